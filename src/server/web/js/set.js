// A VM's (set's) page: its generations on a timeline (bytes read and stored), and a table with
// each generation's mode, consistency, duration and verify status, each with its restore link.
import { api, canOperate } from './api.js';
import { timeChart } from './charts.js';
import { bytes, duration, enc, h, stamp, status, table, time } from './dom.js';

/** A generation's figures: the API may give totals; otherwise they are the sum over its disks. */
export function figures(g) {
  const disks = g.disks ?? [];
  const sum = (k) => disks.reduce((a, d) => a + (Number(d[k]) || 0), 0);
  const startedMs = Date.parse(g.started ?? g.time);
  const finishedMs = Date.parse(g.finished ?? '');
  return {
    bytesRead: g.bytesRead ?? sum('bytesRead'),
    bytesStored: g.bytesStored ?? sum('bytesStored'),
    durationMs: g.durationMs ?? (Number.isFinite(finishedMs) ? finishedMs - startedMs : null),
    size: disks.reduce((a, d) => a + (Number(d.size) || 0), 0),
    startedMs,
  };
}

/** The last recorded verify's word on a generation: ok, failed, or unverified (none covered it). */
function verifyText(g) {
  const v = g.verify;
  const st = typeof v === 'string' ? v : v?.status;
  if (st === 'ok') return h('span', {}, status('succeeded', 'verified'), v?.time ? h('span', { class: 'muted' }, ` ${time(v.time)}`) : '');
  if (st === 'failed') return h('span', {}, status('failed', 'verify failed'), v?.time ? h('span', { class: 'muted' }, ` ${time(v.time)}`) : '');
  return status('none', 'not verified');
}

/** The mode asked for and what the disks got: "auto → incr" (a VM's disks may differ: "auto → full, incr"). */
function modeText(g) {
  const got = [...new Set((g.disks ?? []).map((d) => d.mode).filter(Boolean))];
  if (got.length === 0 || (got.length === 1 && got[0] === g.mode)) return g.mode ?? '–';
  return `${g.mode} → ${got.join(', ')}`;
}

export async function renderSet(main, repo, set) {
  const gens = await api('GET', `/repositories/${enc(repo)}/sets/${enc(set)}/generations`);
  const list = Array.isArray(gens) ? gens : gens.generations ?? [];
  const rows = [...list].sort((a, b) => b.generation - a.generation);
  const chartCard = h('div', { class: 'card' }, h('h2', {}, 'Generations over time'), h('div', { class: 'chart' }, h('canvas', { id: 'timeline', 'aria-label': 'generations timeline' })));
  main.replaceChildren(
    h('h1', {}, `VM ${set}`, h('span', { class: 'muted' }, ` · repository ${repo} · ${list.length} generation${list.length === 1 ? '' : 's'}`)),
    chartCard,
    h('div', { class: 'card', id: 'generations' }, h('h2', {}, 'Generations'), table(
      [{ label: 'Gen', class: 'num' }, 'Started (UTC)', 'Mode', 'Consistency', { label: 'Size', class: 'num' }, { label: 'Read', class: 'num' }, { label: 'Stored', class: 'num' }, { label: 'Duration', class: 'num' }, 'Verified', ''],
      rows.map((g) => {
        const f = figures(g);
        return h('tr', { 'data-generation': g.generation },
          h('td', { class: 'num' }, String(g.generation)),
          h('td', { class: 't' }, stamp(g.started)),
          h('td', {}, modeText(g)),
          h('td', {}, g.consistency ?? '–'),
          h('td', { class: 'num' }, bytes(f.size)),
          h('td', { class: 'num' }, bytes(f.bytesRead)),
          h('td', { class: 'num' }, bytes(f.bytesStored)),
          h('td', { class: 'num' }, duration(f.durationMs)),
          h('td', {}, verifyText(g)),
          h('td', {}, h('a', { href: `#/files/${enc(repo)}/${enc(set)}/${g.generation}`, class: 'browse' }, 'Browse files…'),
            canOperate() ? [' ', h('a', { href: `#/restore/${enc(repo)}/${enc(set)}/${g.generation}` }, 'Restore…')] : ''));
      }),
      'no generations')));
  if (list.length > 0) {
    const pts = (k) => list.map((g) => { const f = figures(g); return { x: f.startedMs, y: f[k], note: `generation ${g.generation} (${g.mode}) ${time(g.started)}` }; }).sort((a, b) => a.x - b.x);
    timeChart(document.getElementById('timeline'), [
      // Read and stored are often equal (a first backup): a larger triangle stays visible behind the dot.
      { label: 'bytes read (changed)', color: '#8a4b00', points: pts('bytesRead'), pointStyle: 'triangle', radius: 7 },
      { label: 'bytes stored (new after dedup)', color: '#0b5cad', points: pts('bytesStored') },
    ]);
  }
  return null;
}
