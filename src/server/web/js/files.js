// The file browser of one generation: its filesystems, then a directory at a time (name, type,
// size, modified), breadcrumbs to climb, a click to descend, a Download link per regular file.
// Every listing starts a disk appliance on the server: tens of seconds, so the page says so.
import { api } from './api.js';
import { bytes, enc, h, stamp, table } from './dom.js';

const filesUrl = (repo, set, gen) => `/repositories/${enc(repo)}/sets/${enc(set)}/generations/${enc(gen)}/files`;
/** The page of a directory: each path segment encoded on its own, so names keep any character. */
const dirHash = (repo, set, gen, disk, fs, path) => `#/files/${enc(repo)}/${enc(set)}/${enc(gen)}/${enc(disk)}/${enc(fs)}${path === '/' ? '' : path.split('/').map(enc).join('/')}`;
const join = (dir, name) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

function waiting(main, what) {
  main.replaceChildren(h('p', { class: 'muted', id: 'files-loading' }, `${what} (the server starts a disk appliance for it: this can take half a minute)…`));
}

function heading(repo, set, gen) {
  return h('h1', {}, `Files of VM ${set}, generation ${gen}`, h('span', { class: 'muted' }, ` · repository ${repo} · `, h('a', { href: `#/set/${enc(repo)}/${enc(set)}` }, 'back to the VM')));
}

export async function renderFilesystems(main, repo, set, gen) {
  waiting(main, 'Looking for filesystems');
  const r = await api('GET', filesUrl(repo, set, gen));
  main.replaceChildren(heading(repo, set, gen), h('div', { class: 'card', id: 'filesystems' }, h('h2', {}, 'Filesystems'), table(
    ['Disk', 'Filesystem', 'Type', 'Label', { label: 'Size', class: 'num' }],
    r.filesystems.map((f) => h('tr', { 'data-fs': f.name },
      h('td', {}, f.disk),
      h('td', {}, h('a', { href: dirHash(repo, set, gen, f.disk, f.name, '/') }, f.name)),
      h('td', {}, f.type),
      h('td', {}, f.label ?? '–'),
      h('td', { class: 'num' }, bytes(f.size)))),
    'no filesystem libguestfs recognises on these disks')));
  return null;
}

export async function renderDirectory(main, repo, set, gen, disk, fs, rest) {
  const path = rest ? rest.replace(/\/+$/, '') || '/' : '/';
  waiting(main, `Listing ${path}`);
  const r = await api('GET', `${filesUrl(repo, set, gen)}?disk=${enc(disk)}&fs=${enc(fs)}&path=${enc(path)}`);
  const crumbs = [h('a', { href: `#/files/${enc(repo)}/${enc(set)}/${enc(gen)}` }, 'filesystems'), ' / ', h('a', { href: dirHash(repo, set, gen, disk, fs, '/') }, `${disk} ${fs}`)];
  let at = '';
  for (const part of path.split('/').filter(Boolean)) {
    at = `${at}/${part}`;
    crumbs.push(' / ', h('a', { href: dirHash(repo, set, gen, disk, fs, at) }, part));
  }
  const download = (p) => `/api/v1${filesUrl(repo, set, gen)}/content?disk=${enc(disk)}&fs=${enc(fs)}&path=${enc(p)}`;
  const entries = [...r.entries].sort((a, b) => (a.type === 'directory') === (b.type === 'directory') ? a.name.localeCompare(b.name) : a.type === 'directory' ? -1 : 1);
  // Only directories are linked from these pages, so the path names one.
  const rowPath = (e) => join(r.path, e.name);
  main.replaceChildren(heading(repo, set, gen),
    h('nav', { class: 'card crumbs', id: 'crumbs', 'aria-label': 'path' }, crumbs),
    h('div', { class: 'card', id: 'entries' }, table(
      ['Name', 'Type', { label: 'Size', class: 'num' }, 'Modified (UTC)', ''],
      entries.map((e) => h('tr', { 'data-name': e.name },
        h('td', {}, e.type === 'directory' ? h('a', { href: dirHash(repo, set, gen, disk, fs, rowPath(e)) }, `${e.name}/`) : e.name,
          e.type === 'symlink' && e.target !== undefined ? h('span', { class: 'muted' }, ` → ${e.target}`) : null),
        h('td', {}, e.type),
        h('td', { class: 'num' }, e.type === 'directory' ? '' : bytes(e.size)),
        h('td', { class: 't' }, stamp(e.mtime)),
        h('td', {}, e.type === 'file' ? h('a', { href: download(rowPath(e)), download: e.name }, 'Download') : ''))),
      'empty directory')));
  return null;
}
