// A job: its summary, live progress over Server-Sent Events, its VMs and its log.
import { api, canOperate } from './api.js';
import { bytes, duration, enc, errText, errorBox, h, kv, status, table, time } from './dom.js';

const ENDED = new Set(['succeeded', 'partial', 'failed', 'cancelled', 'interrupted', 'missed']);

export async function renderJob(main, id) {
  const [job, log] = await Promise.all([api('GET', `/jobs/${enc(id)}`), api('GET', `/jobs/${enc(id)}/log`)]);
  const summary = h('div', { class: 'card', id: 'job-summary' });
  const bar = h('div');
  const progressText = h('div', { class: 'muted', id: 'progress-text' });
  const progress = h('div', { class: 'card', id: 'progress' }, h('h2', {}, 'Progress'), h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar), progressText);
  const vms = h('div', { class: 'card', id: 'job-vms' });
  const logBox = h('div', { class: 'log', id: 'job-log', 'aria-live': 'polite' });
  const seen = new Set();
  const addLog = (e) => {
    const key = `${e.time}|${e.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    logBox.append(h('div', { class: e.level }, `${time(e.time).slice(11, 19)} ${e.level.padEnd(5)} ${e.message}`));
    logBox.scrollTop = logBox.scrollHeight;
  };
  for (const e of log) addLog(e);
  main.replaceChildren(h('h1', {}, `Job #${job.id}`, h('span', { class: 'muted' }, ` · ${job.kind}: ${job.name ?? ''}`)), progress, summary, vms, h('div', { class: 'card' }, h('h2', {}, 'Log'), logBox));

  const setProgress = (p) => {
    const pct = p.total > 0 ? Math.min(100, Math.floor((p.done / p.total) * 100)) : 0;
    bar.parentElement.setAttribute('aria-valuenow', String(pct));
    // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
    bar.style.width = `${pct}%`;
    progressText.textContent = `${pct}% · ${bytes(p.done)} of ${bytes(p.total)}${p.vm ? ` · ${p.vm}` : ''}${p.disk ? ` disk ${p.disk}` : ''}`;
  };
  const draw = (j) => {
    summary.replaceChildren(h('div', { class: 'row' }, h('h2', {}, 'Status '), status(j.status),
      canOperate() && !ENDED.has(j.status) ? h('button', { type: 'button', class: 'danger', onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try { await api('POST', `/jobs/${enc(j.id)}/cancel`); } catch (err) { summary.append(errorBox(err)); }
      } }, 'Cancel') : ''),
    kv([
      ['Trigger', `${j.trigger ?? '–'}${j.user ? ` by ${j.user}` : ''}`],
      ['Scheduled for', j.scheduledFor ? time(j.scheduledFor) : undefined],
      ['Started', time(j.startedAt)], ['Finished', time(j.finishedAt)], ['Duration', duration(j.durationMs)],
      ['Read', bytes(j.bytesRead)], ['Stored', bytes(j.bytesStored)],
      ['Error', j.error ? h('span', { class: 'cause' }, errText(j.error)) : undefined],
      ['Warnings', j.warnings?.length ? j.warnings.map(errText).join('\n') : undefined],
      // A recipe's whole report is long: folded, so the VMs and the log stay on the screen.
      ['Result', j.result !== undefined && j.result !== null ? h('details', {}, h('summary', {}, 'as JSON'), h('pre', {}, JSON.stringify(j.result, null, 2))) : undefined],
    ], 'wide'));
    vms.replaceChildren(h('h2', {}, 'VMs'), table(['VM', 'Set', 'Status', { label: 'Read', class: 'num' }, { label: 'Stored', class: 'num' }, { label: 'Duration', class: 'num' }, 'Generation', 'Cause'],
      (j.vms ?? []).map((v) => h('tr', { class: v.status === 'failed' ? 'failed' : undefined, 'data-vm': v.name },
        h('td', {}, v.name), h('td', {}, v.set ?? '–'), h('td', {}, status(v.status)),
        h('td', { class: 'num' }, bytes(v.bytesRead)), h('td', { class: 'num' }, bytes(v.bytesStored)), h('td', { class: 'num' }, duration(v.durationMs)),
        h('td', {}, v.generation ? (repoOf(j) ? h('a', { href: `#/set/${enc(repoOf(j))}/${enc(v.set)}` }, `#${v.generation}`) : `#${v.generation}`) : '–'),
        h('td', { class: 'cause' }, errText(v.error)))), ENDED.has(j.status) ? 'no VMs in this job' : 'no VM finished yet'));
    if (ENDED.has(j.status)) {
      progress.hidden = j.status !== 'succeeded' && j.status !== 'partial';
      if (!progress.hidden) { bar.style.width = '100%'; progressText.textContent = `done: ${bytes(j.bytesRead)} read, ${bytes(j.bytesStored)} stored`; }
    }
  };
  draw(job);
  if (ENDED.has(job.status)) return null;

  setProgress({ done: 0, total: 0 });
  const events = new EventSource(`/api/v1/jobs/${enc(id)}/events`);
  // How many events arrived live: the browser test reads it to tell streaming from reloading.
  let live = 0;
  const counted = (fn) => (ev) => { progress.dataset.liveEvents = String(++live); fn(JSON.parse(ev.data)); };
  events.addEventListener('progress', counted(setProgress));
  events.addEventListener('log', counted(addLog));
  events.addEventListener('end', counted((j) => {
    events.close();
    progress.dataset.endedLive = 'true';
    draw(j);
    // The summary event carries no VMs' detail beyond JobSummary; fetch the full record once.
    api('GET', `/jobs/${enc(id)}`).then(draw, () => {});
  }));
  events.onerror = () => {
    // The stream broke (server restart, network): show the stored state rather than a frozen bar.
    if (events.readyState === EventSource.CLOSED) api('GET', `/jobs/${enc(id)}`).then(draw, () => {});
  };
  return () => events.close();
}

function repoOf(j) {
  return j.params?.repository ?? j.repository ?? '';
}
