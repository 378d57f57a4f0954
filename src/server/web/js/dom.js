// A tiny element builder: the dashboard is a handful of tables and forms, which needs no framework.
// Text always goes in as text nodes (never innerHTML), so names and error messages cannot inject markup.

/** h('td', { class: 'num' }, 'text', otherNode, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** ISO time as "2026-11-30 13:25:04 UTC": the CLI shows UTC too, so both agree. */
export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** The same without the zone, for table cells whose header says UTC. */
export function stamp(iso) {
  const t = time(iso);
  return t.endsWith(' UTC') ? t.slice(0, -4) : t;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A status with its colour and its word: colour alone says nothing in a grey screenshot. */
export function status(s, label) {
  const word = s ?? 'none';
  return h('span', { class: `status status-${word}`, 'data-status': word }, label ?? (word === 'none' ? 'never run' : word));
}

export function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

export function table(headers, rows, empty = 'none') {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => (typeof x === 'string' ? h('th', {}, x) : h('th', { class: x.class }, x.label))))),
    h('tbody', {}, rows));
}

export function kv(pairs, extra = '') {
  return h('dl', { class: `kv ${extra}` }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export const enc = encodeURIComponent;

/** An error as the API gives it ({code, message}, as the CLI's errors) or a plain string. */
export function errText(e) {
  if (e === undefined || e === null) return '';
  return typeof e === 'string' ? e : e.message ?? JSON.stringify(e);
}
