#!/usr/bin/env node
// Scale benchmark (issue 16): a repository of tens of millions of blobs, built directly.
//
//   npm run bench -- --scale [--entries 50000000] [--dir /tmp/vmbkp-scale] [--disk-size 64] [--root DIR] [--reuse] [--keep]
//   node bench/scale.mjs ...                                  (after `npm run build`)
//
// What is synthetic: the big repository is made with `Repository.init` (encrypted, as users
// get it) and then --entries index entries written straight as index files through the
// repository's own encoder and sealing (writeIndexFile), 5,000 entries in 64 packs per index
// file (as a backup writes them: 64 packs per index file, ~78 blobs of ~200 KB per 16 MiB pack).
// Their digests are random; their packs are 64 sparse files of 32 MiB under data/ holding no
// blob (so `verify` without --read-data finds every pack and range it checks, and reads none).
// Nothing but this benchmark's own small disk is ever read back from them. The empty
// repository is the same init without the synthetic entries.
//
// Then, on the empty and on the big repository, in this order, each under /usr/bin/time
// (wall time and peak RSS): opening (Repository.open + loadIndex in a process of its own:
// first with no local index cache, which builds it for the big repository, then again with
// it), a full backup of a --disk-size MiB disk (random data) with the CLI, a restore of it
// and a whole-repository verify. --root measures another vmbkp build (bin/vmbkp.js and
// dist/) on the same repositories, e.g. main's; the synthetic repository is always made with
// this tree's encoder. The local index cache lives in <dir>/cache (VMBKP_CACHE_DIR).
//
// PASS/MISS: peak RSS of backup, restore and verify in the big repository ≤ 200 MiB; backup
// into the big repository ≤ 2 s more than into the empty one. Report (Markdown) on stdout,
// progress on stderr. Exit 1 when a command fails or the restored disk differs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const MiB = 1024 * 1024;
const ENTRIES_PER_FILE = 5000;
const PACKS_PER_FILE = 64;
const FAKE_PACKS = 64;
const FAKE_PACK_SIZE = 32 * MiB;
const PASSWORD = 'vmbkp-scale-bench';

const { values: opt } = parseArgs({
  options: {
    entries: { type: 'string', default: '50000000' },
    dir: { type: 'string', default: '/tmp/vmbkp-scale' },
    'disk-size': { type: 'string', default: '64' },
    root: { type: 'string', default: repoRoot },
    reuse: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '1800' },
  },
});
const entries = Number(opt.entries);
const root = path.resolve(opt.root);
const dir = path.resolve(opt.dir);
const log = (m) => process.stderr.write(`[scale] ${m}\n`);
const repos = { empty: path.join(dir, 'empty'), big: path.join(dir, 'big') };
const disk = path.join(dir, 'disk.img');
const passwordFile = path.join(dir, 'password');
const cache = path.join(dir, 'cache');

function freeBytes(p) {
  const out = execFileSync('df', ['-B1', '--output=avail', p], { encoding: 'utf8' }).trim().split('\n').pop();
  return Number(out);
}

async function makeRepositories() {
  const { Repository } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/repository/repository.js')).href);
  const { LocalBackend } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/storage/local.js')).href);
  const { writeIndexFile } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/repository/index-files.js')).href);
  const { packName } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/repository/layout.js')).href);
  for (const r of Object.values(repos)) await Repository.init(new LocalBackend(r), { encryption: { password: PASSWORD } });
  const backend = new LocalBackend(repos.big);
  const repo = await Repository.open(backend, { password: async () => PASSWORD });
  const packIds = Array.from({ length: FAKE_PACKS }, () => crypto.randomBytes(32).toString('hex'));
  for (const id of packIds) {
    const f = path.join(repos.big, packName(id));
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '');
    fs.truncateSync(f, FAKE_PACK_SIZE);
  }
  const files = Math.ceil(entries / ENTRIES_PER_FILE);
  const perPack = Math.ceil(ENTRIES_PER_FILE / PACKS_PER_FILE);
  const t0 = Date.now();
  let written = 0;
  for (let f = 0; f < files; f++) {
    const n = Math.min(ENTRIES_PER_FILE, entries - written);
    const digests = crypto.randomBytes(32 * n);
    const packs = [];
    for (let p = 0, e = 0; e < n; p++) {
      const list = [];
      for (let k = 0; k < perPack && e < n; k++, e++) {
        list.push({ digest: digests.subarray(e * 32, e * 32 + 32), type: 0, compression: 1, offset: k * 256 * 1024, length: 200_000, rawLength: 256 * 1024 });
      }
      packs.push({ id: packIds[(f * PACKS_PER_FILE + p) % FAKE_PACKS], entries: list });
    }
    await writeIndexFile(backend, repo.objects, packs);
    written += n;
    if (f % 1000 === 999) log(`synthetic index: ${written} entries in ${f + 1} files, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const synthetic = [...(await backend.list('index/')), ...packIds.map(packName)];
  fs.writeFileSync(path.join(dir, 'synthetic.json'), JSON.stringify(synthetic));
  return { files, seconds: (Date.now() - t0) / 1000 };
}

/** Runs a command under /usr/bin/time: wall seconds, peak RSS (KiB), exit code, output. */
function timed(cmd, args, env = {}) {
  const tf = path.join(dir, 'time.txt');
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', tf, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; if (stderr.length > 1e6) stderr = stderr.slice(-1e5); });
    const timer = setTimeout(() => child.kill('SIGKILL'), Number(opt.timeout) * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let seconds = null, rssKiB = null;
      try { [seconds, rssKiB] = fs.readFileSync(tf, 'utf8').trim().split('\n').pop().split(' ').map(Number); } catch { /* killed */ }
      resolve({ code, signal, seconds, rssKiB, stdout, stderr });
    });
  });
}

const env = { VMBKP_REPO_PASSWORD_FILE: passwordFile, VMBKP_CACHE_DIR: cache };
const vmbkp = (args) => timed(process.execPath, [path.join(root, 'bin/vmbkp.js'), ...args], env);
const OPEN_SCRIPT = `
const [root, where] = process.argv.slice(1);
const { Repository } = await import(root + '/dist/src/repository/repository.js');
const { LocalBackend } = await import(root + '/dist/src/storage/local.js');
const t = performance.now();
const repo = await Repository.open(new LocalBackend(where), { password: async () => ${JSON.stringify(PASSWORD)} });
const opened = performance.now();
await repo.loadIndex();
console.log(JSON.stringify({ openMs: opened - t, loadMs: performance.now() - opened, stats: repo.indexStats ?? null }));
`;
const openRepo = (where) => timed(process.execPath, ['--input-type=module', '-e', OPEN_SCRIPT, root, where], env);

async function main() {
  const need = entries * 170 + 512 * MiB; // index files (~50 B) + lookup file (54 B) + its build's partitions (54 B)
  fs.mkdirSync(dir, { recursive: true });
  const avail = freeBytes(dir);
  log(`free space in ${dir}: ${(avail / 2 ** 30).toFixed(1)} GiB, this run needs about ${(need / 2 ** 30).toFixed(1)} GiB`);
  if (!opt.reuse && avail < need) { log('not enough free space: give --dir elsewhere or fewer --entries'); return 2; }
  fs.writeFileSync(passwordFile, `${PASSWORD}\n`);
  let made = null;
  if (!opt.reuse || !fs.existsSync(path.join(repos.big, 'config'))) {
    for (const r of [...Object.values(repos), cache]) fs.rmSync(r, { recursive: true, force: true });
    log(`building the synthetic repository: ${entries} entries`);
    made = await makeRepositories();
    const img = Buffer.alloc(Number(opt['disk-size']) * MiB);
    for (let o = 0; o < img.length; o += MiB) crypto.randomFillSync(img, o, MiB);
    fs.writeFileSync(disk, img);
  } else {
    // A reused repository is measured as new: what earlier runs backed up, and the cache, go.
    fs.rmSync(cache, { recursive: true, force: true });
    const keep = new Set(JSON.parse(fs.readFileSync(path.join(dir, 'synthetic.json'), 'utf8')));
    for (const sub of ['generations', 'index', 'data', 'locks'].filter((d) => fs.existsSync(path.join(repos.big, d)))) {
      for (const f of fs.readdirSync(path.join(repos.big, sub), { recursive: true, withFileTypes: true })) {
        const rel = path.relative(repos.big, path.join(f.parentPath ?? f.path, f.name));
        if (f.isFile() && !keep.has(rel)) fs.rmSync(path.join(repos.big, rel));
      }
    }
    fs.rmSync(repos.empty, { recursive: true, force: true });
    const { Repository } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/repository/repository.js')).href);
    const { LocalBackend } = await import(pathToFileURL(path.join(repoRoot, 'dist/src/storage/local.js')).href);
    await Repository.init(new LocalBackend(repos.empty), { encryption: { password: PASSWORD } });
  }
  const rows = [];
  let failed = false;
  const sum = (r) => (r.code === 0 ? `${r.seconds?.toFixed(2)} s, ${(r.rssKiB / 1024).toFixed(0)} MiB` : `failed (${r.signal ?? `exit ${r.code}`}${r.seconds !== null ? ` after ${r.seconds.toFixed(0)} s, ${(r.rssKiB / 1024).toFixed(0)} MiB` : ''}): ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
  const results = {};
  for (const [kind, where] of Object.entries(repos)) {
    const out = path.join(dir, `restored-${kind}.img`);
    fs.rmSync(out, { force: true });
    const steps = [
      ['open (no local cache)', () => openRepo(where)],
      ['open (cache built)', () => openRepo(where)],
      ['backup full', () => vmbkp(['backup', '--repo', where, '--set', 'scale', '--mode', 'full', '--json', `disk0=file:${disk}`])],
      ['restore', () => vmbkp(['restore', '--repo', where, '--set', 'scale', '--disk', 'disk0', '--to', `file:${out}`])],
      ['verify', () => vmbkp(['verify', '--repo', where])],
    ];
    results[kind] = {};
    for (const [name, run] of steps) {
      log(`${kind}: ${name}`);
      const r = await run();
      results[kind][name] = r;
      log(`${kind}: ${name}: ${sum(r)}${name.startsWith('open') && r.code === 0 ? ` ${r.stdout.trim()}` : ''}`);
      if (r.code !== 0) { failed = true; if (name !== 'verify') break; }
    }
    if (results[kind].restore?.code === 0) {
      try { execFileSync('cmp', ['-s', disk, out]); } catch { failed = true; log(`${kind}: the restored disk differs from the source`); }
    }
  }
  for (const name of Object.keys(results.empty)) {
    const e = results.empty[name], b = results.big[name];
    rows.push(`| ${name} | ${sum(e)} | ${b ? sum(b) : 'not run'} | ${b && e.code === 0 && b.code === 0 ? `${(b.seconds - e.seconds).toFixed(2)} s` : 'n/a'} |`);
  }
  const big = results.big;
  const peak = Math.max(...['backup full', 'restore', 'verify'].map((s) => (big[s]?.code === 0 ? big[s].rssKiB : Infinity)));
  const extra = big['backup full']?.code === 0 ? big['backup full'].seconds - results.empty['backup full'].seconds : Infinity;
  const loadavg = fs.readFileSync('/proc/loadavg', 'utf8').trim();
  const out = [
    `## Scale: ${entries.toLocaleString('en')} index entries (${root === repoRoot ? 'this tree' : root})`,
    '',
    made ? `Synthetic repository: ${made.files} index files written in ${made.seconds.toFixed(0)} s. ` : 'Synthetic repository reused. ',
    `Disk: ${opt['disk-size']} MiB of random data. Load average at the end: ${loadavg}.`,
    '',
    '| step | empty repository | big repository | big − empty |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    `- peak RSS of backup, restore, verify in the big repository ≤ 200 MiB: ${Number.isFinite(peak) ? `${(peak / 1024).toFixed(0)} MiB` : 'a step failed'} — ${peak <= 200 * 1024 ? 'PASS' : 'MISS'}`,
    `- backup into the big repository ≤ 2 s more than into the empty one: ${Number.isFinite(extra) ? `${extra.toFixed(2)} s more` : 'a step failed'} — ${extra <= 2 ? 'PASS' : 'MISS'}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  if (!opt.keep && !failed) for (const p of [repos.empty, repos.big, cache, disk]) fs.rmSync(p, { recursive: true, force: true });
  return failed ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => { console.error(err); process.exitCode = 1; });
