#!/usr/bin/env node
// The sparse-disk benchmark (issue 16): the same 1 GiB of data in a sparse `file:` disk of
// growing capacity, backed up full, then incr with 3 % of the data rewritten (the changed
// extents given as --changed, as CBT would give them), restored, and the repository verified.
// Each step is one vmbkp process, measured with GNU time (wall seconds, peak RSS).
//
//   npm run bench -- --sparse [--sizes 1G,64G,1T] [--data 1G] [--dir /tmp/x] [--vmbkp bin/vmbkp.js] [--keep] [--json]
//
// The data: 256 extents of 4 MiB (half AES-CTR keystream that does not compress, half
// text-like bytes that do), the same bytes at every capacity, spread evenly across it. The
// 3 %: 1 MiB rewritten in every 8th extent. Bounds (the acceptance): full and incr of
// the largest disk ≤ 1.5 × those of the smallest, and peak RSS ≤ 200 MiB for backup, restore
// and verify at every size. --vmbkp runs another build (main's, for a before/after table).
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseSize } from './disk-image.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const EXTENT = 4 * MiB;
const CHANGE = 1 * MiB;
const CHANGE_EVERY = 8;
const RSS_BOUND_MIB = 200;
const RATIO_BOUND = 1.5;

const { values: opt } = parseArgs({ args: process.argv.slice(2), strict: true, options: {
  sizes: { type: 'string', default: '1G,64G,1T' },
  data: { type: 'string', default: '1G' },
  dir: { type: 'string' },
  vmbkp: { type: 'string', default: path.join(here, '..', 'bin', 'vmbkp.js') },
  keep: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} });

const log = (m) => process.stderr.write(`[sparse] ${m}\n`);
const sizes = opt.sizes.split(',').map((s) => ({ label: s, bytes: parseSize(s) }));
const dataBytes = parseSize(opt.data);
const extents = Math.floor(dataBytes / EXTENT);
const dir = opt.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vmbkp-sparse-'));
fs.mkdirSync(dir, { recursive: true });
const vmbkp = path.resolve(opt.vmbkp);
const passwordFile = path.join(dir, 'password');
fs.writeFileSync(passwordFile, 'bench-password\n', { mode: 0o600 });
const env = { ...process.env, VMBKP_REPO_PASSWORD_FILE: passwordFile };
for (const k of ['VMBKP_REPO', 'VMBKP_REPO_PASSWORD_COMMAND']) delete env[k];

/** Extent k's 4 MiB (generation 0) or its rewritten 1 MiB (generation 1). */
function extentBytes(k, generation, length) {
  const key = crypto.createHash('sha256').update(`vmbkp-sparse ${k} ${generation}`).digest().subarray(0, 16);
  const c = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const b = c.update(Buffer.alloc(length));
  // The second half text-like: letters and spaces, which compress about 2:1.
  for (let i = length / 2; i < length; i++) b[i] = b[i] < 40 ? 32 : 97 + (b[i] % 26);
  return b;
}

/** Where extent k starts in a disk of `capacity` bytes: evenly spread, 1 MiB aligned. */
const extentStart = (k, capacity) => Math.floor(capacity / extents / MiB) * MiB * k;
/** The rewritten MiB of extent k (every CHANGE_EVERY-th), 1 MiB into it. */
const changeStart = (k, capacity) => extentStart(k, capacity) + MiB;

function makeDisk(file, capacity) {
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, capacity);
  for (let k = 0; k < extents; k++) fs.writeSync(fd, extentBytes(k, 0, EXTENT), 0, EXTENT, extentStart(k, capacity));
  fs.closeSync(fd);
}

/** Rewrites 3 % of the data in place; returns the changed extents' JSON file. */
function mutateDisk(file, capacity) {
  const fd = fs.openSync(file, 'r+');
  const changed = [];
  for (let k = 0; k < extents; k += CHANGE_EVERY) {
    fs.writeSync(fd, extentBytes(k, 1, CHANGE), 0, CHANGE, changeStart(k, capacity));
    changed.push({ start: changeStart(k, capacity), length: CHANGE });
  }
  fs.closeSync(fd);
  const out = `${file}.changed.json`;
  fs.writeFileSync(out, JSON.stringify(changed));
  return out;
}

/** The data extents of two disks hold the same bytes (the holes are not read: 1 TiB of zeros would take minutes). */
function sameData(a, b, capacity) {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  const x = Buffer.alloc(EXTENT);
  const y = Buffer.alloc(EXTENT);
  try {
    for (let k = 0; k < extents; k++) {
      fs.readSync(fa, x, 0, EXTENT, extentStart(k, capacity));
      fs.readSync(fb, y, 0, EXTENT, extentStart(k, capacity));
      if (!x.equals(y)) return false;
    }
    return fs.statSync(a).size === fs.statSync(b).size;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function run(label, args) {
  const timeFile = path.join(dir, 'time.out');
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, process.execPath, vmbkp, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('close', (code) => {
      if (code !== 0) { reject(new Error(`${label} failed (exit ${code}): ${Buffer.concat(err).toString().trim().split('\n').slice(-5).join('\n')}`)); return; }
      const [seconds, kib] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      const r = { seconds, rssMiB: Math.round(kib / 1024), stdout: Buffer.concat(out).toString() };
      log(`${label}: ${seconds.toFixed(2)} s, peak RSS ${r.rssMiB} MiB`);
      resolve(r);
    });
  });
}

const bytesRead = (stdout) => JSON.parse(stdout).disks.reduce((n, d) => n + (d.stats?.bytesRead ?? d.bytesRead ?? 0), 0);

async function one(size) {
  const disk = path.join(dir, `disk-${size.label}.img`);
  const repo = path.join(dir, `repo-${size.label}`);
  const restored = path.join(dir, `restored-${size.label}.img`);
  fs.rmSync(repo, { recursive: true, force: true });
  log(`${size.label}: writing ${extents} extents of 4 MiB into a sparse file of ${size.bytes} bytes`);
  makeDisk(disk, size.bytes);
  spawnSync('sync');
  await run(`${size.label} init`, ['init', '--repo', repo]);
  const backup = (mode, changed) => run(`${size.label} backup ${mode}`,
    ['backup', '--repo', repo, '--set', 'sparse', '--mode', mode, '--json', ...(changed ? ['--changed', `d0=${changed}`] : []), `d0=file:${disk}`]);
  const full = await backup('full');
  const changed = mutateDisk(disk, size.bytes);
  spawnSync('sync');
  const incr = await backup('incr', changed);
  fs.rmSync(restored, { force: true });
  const restore = await run(`${size.label} restore`, ['restore', '--repo', repo, '--set', 'sparse', '--disk', 'd0', '--to', `file:${restored}`]);
  const verify = await run(`${size.label} verify`, ['verify', '--repo', repo]);
  const ok = sameData(disk, restored, size.bytes);
  const allocatedMiB = Math.round(fs.statSync(restored).blocks * 512 / MiB);
  log(`${size.label}: restored data ${ok ? 'matches' : 'DIFFERS'}; restored file allocates ${allocatedMiB} MiB`);
  if (!opt.keep) for (const f of [disk, restored, changed]) fs.rmSync(f, { force: true });
  if (!opt.keep) fs.rmSync(repo, { recursive: true, force: true });
  return {
    size: size.label, capacity: size.bytes,
    full: { seconds: full.seconds, rssMiB: full.rssMiB, bytesRead: bytesRead(full.stdout) },
    incr: { seconds: incr.seconds, rssMiB: incr.rssMiB, bytesRead: bytesRead(incr.stdout) },
    restore: { seconds: restore.seconds, rssMiB: restore.rssMiB, allocatedMiB, dataOk: ok },
    verify: { seconds: verify.seconds, rssMiB: verify.rssMiB },
  };
}

const rows = [];
const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').trim();
for (const s of sizes) rows.push(await one(s));
const loadAfter = fs.readFileSync('/proc/loadavg', 'utf8').trim();

const first = rows[0];
const last = rows[rows.length - 1];
const bounds = [
  { name: `full(${last.size}) / full(${first.size}) <= ${RATIO_BOUND}`, value: last.full.seconds / first.full.seconds, ok: last.full.seconds / first.full.seconds <= RATIO_BOUND },
  { name: `incr(${last.size}) / incr(${first.size}) <= ${RATIO_BOUND}`, value: last.incr.seconds / first.incr.seconds, ok: last.incr.seconds / first.incr.seconds <= RATIO_BOUND },
];
for (const r of rows) {
  for (const step of ['full', 'incr', 'restore', 'verify']) {
    bounds.push({ name: `peak RSS of ${step} (${r.size}) <= ${RSS_BOUND_MIB} MiB`, value: r[step].rssMiB, ok: r[step].rssMiB <= RSS_BOUND_MIB });
  }
  bounds.push({ name: `restore of ${r.size}: data matches`, value: r.restore.dataOk, ok: r.restore.dataOk });
}

if (opt.json) {
  process.stdout.write(`${JSON.stringify({ vmbkp, load: { before: loadBefore, after: loadAfter }, rows, bounds }, null, 2)}\n`);
} else {
  const p = (s) => process.stdout.write(`${s}\n`);
  p(`vmbkp: ${vmbkp}; data ${opt.data} in ${extents} extents of 4 MiB; load average before ${loadBefore}, after ${loadAfter}`);
  p('');
  p('| capacity | full s | full RSS MiB | full read MiB | incr s | incr RSS MiB | restore s | restore RSS MiB | restored allocated MiB | verify s | verify RSS MiB |');
  p('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    p(`| ${r.size} | ${r.full.seconds.toFixed(2)} | ${r.full.rssMiB} | ${Math.round(r.full.bytesRead / MiB)} | ${r.incr.seconds.toFixed(2)} | ${r.incr.rssMiB} | `
      + `${r.restore.seconds.toFixed(2)} | ${r.restore.rssMiB} | ${r.restore.allocatedMiB} | ${r.verify.seconds.toFixed(2)} | ${r.verify.rssMiB} |`);
  }
  p('');
  for (const b of bounds) p(`${b.ok ? 'PASS' : 'MISS'}  ${b.name}: ${typeof b.value === 'number' ? b.value.toFixed(2) : b.value}`);
}
if (!opt.keep && !opt.dir) fs.rmSync(dir, { recursive: true, force: true });
