#!/usr/bin/env node
// A real-filesystem workload for the benchmark: an ext4 image of real files, and its next
// generation with files removed and added in place, with the changed extents.
//
//   node bench/ext4-image.mjs --dir DIR [--size 1G]     → DIR/base.img, DIR/gen1.img, DIR/gen1.json
//
// The files are those every Debian machine with this project's setup.sh has (golang-go and
// python3 come from it): BASE_TREES below, ~540 MB in ~13,000 files (Go's compiled packages
// and tools, Go's sources, Python's standard library, Perl's, the i18n locale sources). The
// next generation removes NEXT_REMOVED (Go's tool binaries) and adds NEXT_ADDED (Vim's
// runtime files, Go's test sources, the time-zone data) with debugfs, in place, as a guest
// changes its disk between backups: the rest of the image stays where it was.
//
// Deterministic: the same files give the same bytes. mkfs.ext4 gets a fixed UUID, hash seed,
// root owner, label, block and inode size, and E2FSPROGS_FAKE_TIME for every time it sets
// itself; the files' atime and ctime (which a copy or a read changes) are then set to that
// time with debugfs; the mtimes are the installed files' own. The changed extents are found
// by comparing the two images in 64 KiB blocks, in the shape of vSphere's QueryChangedDiskAreas
// answer ([{start, length}], sorted, merged), as bench/disk-image.mjs writes them.
//
// Needs mkfs.ext4 and debugfs (e2fsprogs). Progress on stderr; a JSON summary on stdout.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export const BASE_TREES = ['/usr/lib/go-1.19', '/usr/share/go-1.19/src', '/usr/lib/python3.11', '/usr/share/perl', '/usr/share/i18n'];
export const NEXT_REMOVED = ['/usr/lib/go-1.19/pkg/tool'];
export const NEXT_ADDED = ['/usr/share/vim', '/usr/share/go-1.19/test', '/usr/share/zoneinfo'];
const BLOCK = 64 * 1024;
/** Every time mkfs or debugfs sets, and every atime and ctime: 2023-11-14 22:13:20 UTC. */
const FIXED_TIME = 1700000000;
const UUID = '6f0c6a3e-1b7a-4c1e-9e57-3c1d2b4a5f60';
const HASH_SEED = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(FIXED_TIME) };

const log = (msg) => process.stderr.write(`[ext4-image] ${msg}\n`);

function exec(cmd, args) {
  return execFileSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 }).toString('utf8');
}

/** Every path under the trees (the trees themselves included), parents before children, sorted. */
function walk(trees) {
  const out = [];
  const visit = (p) => {
    const st = fs.lstatSync(p);
    out.push({ path: p, st });
    if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) visit(path.join(p, name));
  };
  for (const t of trees) {
    if (!fs.existsSync(t)) throw new Error(`ext4 workload: ${t} is missing (installed by setup.sh)`);
    visit(t);
  }
  return out;
}

/** debugfs quotes: a path in double quotes (none of the trees has a quote or a newline in a name). */
const q = (p) => {
  if (/["\n]/.test(p)) throw new Error(`ext4 workload: cannot pass ${JSON.stringify(p)} to debugfs`);
  return `"${p}"`;
};

function debugfs(img, lines) {
  const file = `${img}.debugfs`;
  fs.writeFileSync(file, lines.join('\n') + '\n');
  try { exec('debugfs', ['-w', '-f', file, img]); } finally { fs.rmSync(file, { force: true }); }
}

/** The parent directories of the trees, up to /, that are not trees themselves. */
function parents(trees) {
  const set = new Set();
  for (const t of trees) for (let p = path.dirname(t); p !== '/'; p = path.dirname(p)) set.add(p);
  return [...set].sort();
}

const fixTimes = (paths) => paths.flatMap((p) => [`sif ${q(p)} atime @${FIXED_TIME}`, `sif ${q(p)} ctime @${FIXED_TIME}`]);

export function makeBase(dir, size) {
  const stage = path.join(dir, 'stage');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  const entries = walk(BASE_TREES);
  for (const t of BASE_TREES) {
    fs.mkdirSync(path.join(stage, path.dirname(t)), { recursive: true });
    exec('cp', ['-a', t, path.join(stage, t)]);
  }
  for (const p of parents(BASE_TREES).reverse()) fs.utimesSync(path.join(stage, p), FIXED_TIME, FIXED_TIME);
  const img = path.join(dir, 'base.img');
  fs.rmSync(img, { force: true });
  fs.writeFileSync(img, '');
  fs.truncateSync(img, size);
  exec('mkfs.ext4', ['-q', '-F', '-T', 'default', '-b', '4096', '-I', '256', '-U', UUID, '-L', 'vmbkp-bench',
    '-E', `root_owner=0:0,hash_seed=${HASH_SEED},lazy_itable_init=0,lazy_journal_init=0,nodiscard`, '-d', stage, img]);
  fs.rmSync(stage, { recursive: true, force: true });
  debugfs(img, fixTimes([...parents(BASE_TREES), ...entries.map((e) => e.path)]));
  const bytes = entries.reduce((n, e) => n + (e.st.isFile() ? e.st.size : 0), 0);
  return { img, files: entries.filter((e) => e.st.isFile()).length, entries: entries.length, bytes };
}

export function makeNext(dir) {
  const base = path.join(dir, 'base.img');
  const img = path.join(dir, 'gen1.img');
  exec('cp', ['--sparse=always', base, img]);
  const removed = walk(NEXT_REMOVED);
  const added = walk(NEXT_ADDED);
  const lines = [];
  // Removal: children before their directory.
  for (const e of [...removed].reverse()) lines.push(`${e.st.isDirectory() ? 'rmdir' : 'rm'} ${q(e.path)}`);
  const have = new Set(parents(BASE_TREES));
  for (const p of parents(NEXT_ADDED)) if (!have.has(p)) lines.push(`mkdir ${q(p)}`);
  for (const e of added) {
    if (e.st.isDirectory()) lines.push(`mkdir ${q(e.path)}`);
    else if (e.st.isSymbolicLink()) lines.push(`symlink ${q(e.path)} ${q(fs.readlinkSync(e.path))}`);
    else if (e.st.isFile()) lines.push(`write ${q(e.path)} ${q(e.path)}`);
  }
  lines.push(...fixTimes(added.map((e) => e.path)));
  lines.push(...added.filter((e) => !e.st.isSymbolicLink()).map((e) => `sif ${q(e.path)} mtime @${Math.floor(e.st.mtimeMs / 1000)}`));
  debugfs(img, lines);
  const extents = changedExtents(base, img);
  fs.writeFileSync(path.join(dir, 'gen1.json'), JSON.stringify(extents));
  return {
    img,
    removedFiles: removed.filter((e) => e.st.isFile()).length, removedBytes: removed.reduce((n, e) => n + (e.st.isFile() ? e.st.size : 0), 0),
    addedFiles: added.filter((e) => e.st.isFile()).length, addedBytes: added.reduce((n, e) => n + (e.st.isFile() ? e.st.size : 0), 0),
    extents: extents.length, extentsBytes: extents.reduce((n, e) => n + e.length, 0),
  };
}

/** The 64 KiB blocks in which two images of one size differ, merged into runs. */
export function changedExtents(a, b) {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  const size = fs.fstatSync(fa).size;
  const step = 256 * BLOCK;
  const ba = Buffer.alloc(step);
  const bb = Buffer.alloc(step);
  const out = [];
  try {
    for (let off = 0; off < size; off += step) {
      const n = fs.readSync(fa, ba, 0, Math.min(step, size - off), off);
      fs.readSync(fb, bb, 0, n, off);
      for (let i = 0; i < n; i += BLOCK) {
        const end = Math.min(i + BLOCK, n);
        if (ba.compare(bb, i, end, i, end) === 0) continue;
        const start = off + i;
        const last = out[out.length - 1];
        if (last && last.start + last.length === start) last.length += end - i;
        else out.push({ start, length: end - i });
      }
    }
  } finally { fs.closeSync(fa); fs.closeSync(fb); }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, size: { type: 'string', default: '1G' } } });
  if (!values.dir) { process.stderr.write('usage: node bench/ext4-image.mjs --dir DIR [--size 1G]\n'); process.exit(2); }
  const { parseSize } = await import('./disk-image.mjs');
  fs.mkdirSync(values.dir, { recursive: true });
  const t0 = Date.now();
  const base = makeBase(values.dir, parseSize(values.size));
  log(`base.img: ${base.files} files, ${(base.bytes / 2 ** 20).toFixed(1)} MiB, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const t1 = Date.now();
  const next = makeNext(values.dir);
  log(`gen1.img: -${next.removedFiles} files, +${next.addedFiles} files, ${next.extents} changed extents of ${(next.extentsBytes / 2 ** 20).toFixed(1)} MiB, in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  process.stdout.write(JSON.stringify({ trees: BASE_TREES, removed: NEXT_REMOVED, added: NEXT_ADDED, base, next }) + '\n');
}
