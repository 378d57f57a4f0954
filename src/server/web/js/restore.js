// Restore flows for one generation: a disk to a file, a disk as an NBD export, the VM as a new
// VM. Each shows what will happen (POST /preview, which changes nothing) before the user confirms.
import { api, startJob } from './api.js';
import { bytes, enc, errorBox, h, kv, time } from './dom.js';

export async function renderRestore(main, repo, set, gen) {
  const g = await api('GET', `/repositories/${enc(repo)}/sets/${enc(set)}/generations/${enc(gen)}`);
  const disks = g.disks ?? [];
  const diskOptions = () => disks.map((d) => h('option', { value: d.name }, `${d.name}${d.label ? ` (${d.label}${d.bus ? `, ${d.bus}` : ''})` : ''} · ${bytes(d.size)}`));
  const flows = {
    file: { title: 'Disk → file', build: diskToFile },
    nbd: { title: 'Disk → NBD export', build: diskToNbd },
    vm: { title: 'VM → new VM', build: vmToNewVm },
  };
  const body = h('div', { class: 'card', id: 'restore-form' });
  const tabs = h('div', { class: 'tabs', role: 'group' });
  const show = (key) => {
    for (const b of tabs.children) b.setAttribute('aria-pressed', String(b.dataset.flow === key));
    body.replaceChildren(h('h2', {}, flows[key].title), flows[key].build());
  };
  for (const [key, f] of Object.entries(flows)) tabs.append(h('button', { type: 'button', 'data-flow': key, onclick: () => show(key) }, f.title));
  main.replaceChildren(
    h('h1', {}, `Restore ${set} generation ${gen}`),
    h('div', { class: 'card' }, kv([['Repository', repo], ['Started', time(g.started)], ['Mode', [g.mode, ...new Set(disks.map((d) => d.mode).filter((m) => m && m !== g.mode))].join(' → ')], ['Consistency', g.consistency ?? '–'], ['Disks', disks.map((d) => `${d.name} ${bytes(d.size)}`).join(', ')]])),
    tabs, body);
  show('file');

  const base = { repository: repo, set, generation: Number(gen) };

  /** A form whose Restore button is enabled only by a preview of exactly what it will send. */
  function previewed(fields, body, { previewFn, startFn, startLabel }) {
    const out = h('div', { id: 'preview-out' });
    const start = h('button', { type: 'button', id: 'confirm', disabled: true }, startLabel);
    let previewedBody = null;
    const previewBtn = h('button', { type: 'button', class: 'secondary', id: 'preview' }, 'Preview');
    previewBtn.addEventListener('click', async () => {
      out.replaceChildren();
      start.disabled = true;
      try {
        const b = body();
        const p = await previewFn(b);
        out.replaceChildren(h('div', { class: 'card preview', id: 'preview-box' }, h('h2', {}, 'What will happen'), p));
        previewedBody = JSON.stringify(b);
        start.disabled = false;
      } catch (err) { out.replaceChildren(errorBox(err)); }
    });
    // Changing a field after the preview makes it stale: preview again before confirming.
    for (const f of fields) f.addEventListener('input', () => { start.disabled = true; previewedBody = null; });
    start.addEventListener('click', async () => {
      const b = body();
      if (JSON.stringify(b) !== previewedBody) { start.disabled = true; return; }
      start.disabled = true;
      try { await startFn(b, out); } catch (err) { out.append(errorBox(err)); start.disabled = false; }
    });
    return h('div', {}, h('div', { class: 'row' }, previewBtn, start), out);
  }

  function diskToFile() {
    const disk = h('select', { name: 'disk' }, diskOptions());
    const to = h('input', { name: 'to', placeholder: '/abs/path/disk.img', required: true });
    return h('form', { onsubmit: (e) => e.preventDefault() },
      h('label', {}, h('span', {}, 'Disk'), disk),
      h('label', {}, h('span', {}, 'Write to file'), to),
      previewed([disk, to], () => ({ kind: 'restore-disk', ...base, disk: disk.value, to: to.value }), {
        previewFn: async (b) => diskPlan(await api('POST', '/preview', b)),
        startFn: startJob,
        startLabel: 'Restore disk',
      }));
  }

  function diskToNbd() {
    const disk = h('select', { name: 'disk' }, diskOptions());
    const list = h('div', { id: 'exports' });
    const refresh = async () => {
      const ex = await api('GET', '/exports').catch(() => []);
      list.replaceChildren(...(ex.length === 0 ? [h('p', { class: 'muted' }, 'no exports running')] : ex.map((x) => h('div', { class: 'row' },
        h('code', {}, x.uri), h('span', {}, `${x.set ?? ''} #${x.generation ?? ''} ${x.disk ?? ''}`),
        h('button', { type: 'button', class: 'danger', onclick: async () => { await api('DELETE', `/exports/${enc(x.id)}`); await refresh(); } }, 'Stop')))));
    };
    void refresh();
    return h('form', { onsubmit: (e) => e.preventDefault() },
      h('label', {}, h('span', {}, 'Disk'), disk),
      previewed([disk], () => ({ ...base, disk: disk.value }), {
        // Serving changes nothing in the repository: the preview is what the export will be.
        previewFn: async (b) => {
          const d = disks.find((x) => x.name === b.disk);
          return kv([['Serves', `disk ${b.disk} of ${set} generation ${gen}, read-only`], ['Size', bytes(d?.size)], ['Protocol', 'NBD (connect with nbdcopy, qemu-img or nbd-client)'], ['Stops', 'when you press Stop, or the server stops']]);
        },
        startFn: async (b, out) => { const x = await api('POST', '/exports', b); out.append(h('p', { id: 'export-uri' }, 'Serving at ', h('code', {}, x.uri))); await refresh(); },
        startLabel: 'Start export',
      }),
      h('h2', {}, 'Running exports'), list);
  }

  function vmToNewVm() {
    const vcenter = h('input', { name: 'vcenter', placeholder: 'vCenter profile name from the config' });
    const name = h('input', { name: 'name', value: `${set}-restored` });
    return h('form', { onsubmit: (e) => e.preventDefault() },
      h('label', {}, h('span', {}, 'vCenter'), vcenter),
      h('label', {}, h('span', {}, 'New VM name'), name),
      previewed([vcenter, name], () => ({ kind: 'restore-vm', ...base, vcenter: vcenter.value, name: name.value }), {
        previewFn: async (b) => describe(await api('POST', '/preview', b)),
        startFn: startJob,
        startLabel: 'Restore VM',
      }));
  }
}

/** The disk restore plan (the CLI's restore --dry-run JSON) in words; a refused one is an error. */
function diskPlan(p) {
  if (p.refused) throw new Error(p.refused);
  const t = p.target ?? {};
  const what = t.kind === 'qcow2' ? 'a qcow2 image' : t.kind === 'nbd' ? 'the NBD export' : 'a sparse raw file';
  return h('div', {},
    h('p', { id: 'preview-summary' }, `Writes disk ${p.disk} of ${p.set} generation ${p.generation} (${bytes(p.size)}) to ${what} at ${t.uri}.`),
    kv([
      ['Data to write', `at most ${bytes(p.bytesToWriteAtMost)} (zero ranges are left as holes)`],
      ['Target', t.exists ? `exists (${bytes(t.currentSize)}), ${t.overwritten ? 'will be replaced' : 'kept'}` : 'new file'],
      ['Changes now', 'nothing: this is a preview'],
    ]));
}

/** A preview answer as readable lines: scalars as key/value, anything nested as indented JSON. */
function describe(p) {
  if (p === null || typeof p !== 'object') return h('p', {}, String(p));
  if (typeof p.summary === 'string' || typeof p.description === 'string') {
    const rest = Object.entries(p).filter(([k]) => k !== 'summary' && k !== 'description');
    return h('div', {}, h('p', { id: 'preview-summary' }, p.summary ?? p.description), rest.length ? describe(Object.fromEntries(rest)) : '');
  }
  return kv(Object.entries(p).map(([k, v]) => [k, v !== null && typeof v === 'object' ? h('pre', {}, JSON.stringify(v, null, 2)) : String(v)]));
}
