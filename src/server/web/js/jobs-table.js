// A table of JobSummary rows, shared by the overview and the jobs page.
import { bytes, duration, enc, errText, h, stamp, status, table } from './dom.js';

/** compact: the columns that fit half a laptop screen (running jobs have no duration or cause yet). */
export function jobsTable(jobs, empty = 'no jobs yet', { compact = false } = {}) {
  if (compact) {
    return table(['Job', 'Name', 'Status', 'Started (UTC)', { label: 'Read', class: 'num' }],
      jobs.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('a', { href: `#/job/${enc(j.id)}` }, `#${j.id}`)),
        h('td', {}, `${j.kind}: ${j.name ?? ''}`),
        h('td', {}, status(j.status)),
        h('td', { class: 't' }, stamp(j.startedAt ?? j.scheduledFor)),
        h('td', { class: 'num' }, bytes(j.bytesRead)))),
      empty);
  }
  return table(
    ['Job', 'Name', 'Trigger', 'Status', 'Started (UTC)', { label: 'Duration', class: 'num' }, { label: 'Read', class: 'num' }, { label: 'Stored', class: 'num' }, 'Cause'],
    jobs.map((j) => h('tr', { class: j.status === 'failed' ? 'failed' : undefined, 'data-job': j.id },
      h('td', {}, h('a', { href: `#/job/${enc(j.id)}` }, `#${j.id}`)),
      h('td', {}, `${j.kind}: ${j.name ?? ''}`),
      h('td', {}, j.trigger ?? '–'),
      h('td', {}, status(j.status)),
      h('td', { class: 't' }, stamp(j.startedAt ?? j.scheduledFor)),
      h('td', { class: 'num' }, duration(j.durationMs)),
      h('td', { class: 'num' }, bytes(j.bytesRead)),
      h('td', { class: 'num' }, bytes(j.bytesStored)),
      h('td', { class: 'cause' }, errText(j.error) || failedVms(j)))),
    empty);
}

function failedVms(j) {
  const bad = (j.vms ?? []).filter((v) => v.error);
  return bad.map((v) => `${v.name}: ${errText(v.error)}`).join('; ');
}
