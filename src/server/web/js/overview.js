// The overview: last run per VM (failures first), repositories and their growth, schedules with
// their next runs, running and recent jobs. Refreshed every few seconds while shown.
import { api, canOperate, startJob } from './api.js';
import { destroyCharts, timeChart } from './charts.js';
import { bytes, enc, errText, errorBox, h, stamp, status, table } from './dom.js';
import { jobsTable } from './jobs-table.js';

const RANK = { failed: 0, partial: 1, interrupted: 2, missed: 3, cancelled: 4, running: 5, queued: 6 };

export async function renderOverview(main) {
  let stopped = false;
  async function draw() {
    const [ov, recent] = await Promise.all([api('GET', '/overview'), api('GET', '/jobs?limit=10')]);
    const growth = await Promise.all(ov.repositories.map((r) => api('GET', `/repositories/${enc(r.name)}/growth`).catch(() => [])));
    if (stopped) return;
    destroyCharts();
    main.replaceChildren(
      h('h1', {}, 'Overview'),
      h('div', { class: 'card', id: 'sets' }, h('h2', {}, 'Last run per VM'), setsTable(ov.sets)),
      h('div', { class: 'grid' },
        h('div', { class: 'card', id: 'running' }, h('h2', {}, 'Running jobs'), jobsTable(ov.running, 'nothing running', { compact: true })),
        h('div', { class: 'card', id: 'schedules' }, h('h2', {}, 'Schedules'), schedulesTable(ov.schedules))),
      h('div', { class: 'card', id: 'recent' }, h('h2', {}, 'Recent jobs ', h('a', { href: '#/jobs' }, '(all)')), jobsTable(recent)),
      h('div', { class: 'grid' }, ov.repositories.map((r, i) => repositoryCard(r, growth[i], i))));
    for (const [i, r] of ov.repositories.entries()) {
      const canvas = document.getElementById(`growth-${i}`);
      const points = (growth[i] ?? []).map((s) => ({ x: Date.parse(s.time), y: s.storedBytes }));
      if (canvas && points.length > 0) timeChart(canvas, [{ label: `${r.name}: stored bytes`, color: '#0b5cad', points }], { stepped: true });
    }
  }
  await draw();
  const timer = setInterval(() => {
    draw().catch((err) => { if (!stopped) main.prepend(errorBox(err)); });
  }, 5000);
  return () => { stopped = true; clearInterval(timer); };
}

function setsTable(sets) {
  const sorted = [...sets].sort((a, b) => (RANK[a.lastJob?.status] ?? 9) - (RANK[b.lastJob?.status] ?? 9));
  return table(
    ['VM / set', 'Repository', 'Last run (UTC)', 'Status', 'Last success', 'Generations', 'Newest', 'Cause'],
    sorted.map((s) => {
      const vm = s.lastJob?.vms?.find((v) => v.set === s.set || v.name === s.set);
      const st = vm?.status ?? s.lastJob?.status;
      const cause = vm?.error ?? (st === 'failed' ? s.lastJob?.error : null);
      return h('tr', { class: st === 'failed' ? 'failed' : undefined, 'data-set': s.set },
        h('td', { class: 'name' }, h('a', { href: `#/set/${enc(s.repository)}/${enc(s.set)}` }, s.set)),
        h('td', {}, s.repository),
        h('td', { class: 't' }, s.lastJob ? h('a', { href: `#/job/${enc(s.lastJob.id)}` }, stamp(s.lastJob.startedAt)) : '–'),
        h('td', {}, status(st)),
        h('td', { class: 't' }, stamp(s.lastSuccessAt)),
        h('td', { class: 'num' }, String(s.generations ?? 0)),
        h('td', {}, s.lastGeneration ? [`#${s.lastGeneration.id}`, s.lastGeneration.mode, stamp(s.lastGeneration.time)].filter(Boolean).join(' · ') : '–'),
        h('td', { class: 'cause' }, errText(cause)));
    }),
    'no sets yet: nothing has been backed up');
}

function schedulesTable(schedules) {
  return table(['Schedule', 'Next run (UTC)', 'Last run', ''],
    schedules.map((s) => h('tr', { 'data-schedule': s.name },
      h('td', { title: `recipe ${s.recipe}` }, h('strong', {}, s.name), h('div', { class: 'muted' }, h('code', {}, s.cron), ` ${s.timezone ?? 'UTC'}`)),
      h('td', { class: 't' }, stamp(s.nextRunAt)),
      h('td', { class: 't' }, stamp(s.lastRunAt)),
      h('td', {}, canOperate() ? h('button', { type: 'button', class: 'secondary', onclick: (ev) => runNow(ev.currentTarget, s.name) }, 'Run now') : ''))),
    'no schedules configured');
}

async function runNow(button, schedule) {
  button.disabled = true;
  try {
    await startJob({ kind: 'recipe', schedule });
  } catch (err) {
    button.disabled = false;
    button.after(errorBox(err));
  }
}

function repositoryCard(r, growth, i) {
  return h('div', { class: 'card', 'data-repository': r.name },
    h('h2', {}, `Repository ${r.name}`),
    h('p', {}, `${bytes(r.storedBytes)} stored · dedup ratio ${r.dedupRatio ? `${Number(r.dedupRatio).toFixed(2)}×` : '–'}`),
    (growth ?? []).length > 0 ? h('div', { class: 'chart' }, h('canvas', { id: `growth-${i}`, 'aria-label': `growth of ${r.name}` })) : h('p', { class: 'muted' }, 'no size samples yet'));
}
