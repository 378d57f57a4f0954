// Every job, newest first, with a filter on status.
import { api } from './api.js';
import { h } from './dom.js';
import { jobsTable } from './jobs-table.js';

export async function renderJobs(main) {
  const filter = h('select', { 'aria-label': 'status' }, ['', 'running', 'succeeded', 'partial', 'failed', 'cancelled', 'interrupted', 'missed'].map((s) => h('option', { value: s }, s || 'any status')));
  const body = h('div');
  async function load() {
    const q = filter.value ? `&status=${filter.value}` : '';
    body.replaceChildren(jobsTable(await api('GET', `/jobs?limit=100${q}`)));
  }
  filter.addEventListener('change', () => { void load(); });
  main.replaceChildren(h('h1', {}, 'Jobs'), h('div', { class: 'card' }, h('div', { class: 'row' }, h('span', {}, 'Show'), filter), body));
  await load();
  const timer = setInterval(() => { void load().catch(() => {}); }, 5000);
  return () => clearInterval(timer);
}
