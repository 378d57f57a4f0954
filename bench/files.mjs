#!/usr/bin/env node
// vmbkp files benchmark (issue 18): what file-level restore costs beside restoring a disk.
//
//   npm run bench -- --files [--size 2G] [--dir bench/out-files] [--keep] [--json FILE]
//   node bench/files.mjs ...                     (after `npm run build`)
//
// One disk image of --size (GPT, one ext4 partition, made by test/fs-images.ts's builder with
// mke2fs -d: no loop device) holds /etc/hostname (one small file), /small (1,000 files of
// 4 KiB) and /big/one-gib.bin (1 GiB, incompressible). It is backed up once into an encrypted
// repository, then from that generation, each step a separate command (one appliance each):
//
//   list       vmbkp files list --json
//   1 file     vmbkp files get /etc/hostname --to D --json
//   1,000      vmbkp files get /small --to D --json
//   1 GiB      vmbkp files get /big/one-gib.bin --to D --json
//   restore    vmbkp restore --disk sda --to file:IMG   (the whole disk)
//   kernel     restore, then mount -o ro,loop,offset=1MiB IMG and cp the same files (root only;
//              skipped with a note where loop devices or mount are not available)
//
// Each step reports wall time and the bytes it read from the repository: `bytesRead` of the
// files commands' --json (the contract's count of what the appliance read through the
// generation's NBD export); a whole-disk restore reads every stored chunk of the generation,
// shown as the repository's size. Extracted files are checked against the originals' SHA-256.
// Progress goes to stderr, the report (Markdown) to stdout. Exit status 0 when every step ran
// and matched, 1 when one failed, 2 on bad usage, 3 when `vmbkp files` does not exist yet.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const vmbkpBin = path.join(repoRoot, 'bin/vmbkp.js');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SET = 'files-bench';
const SMALL_FILES = 1000;
const SMALL_SIZE = 4096;
/** Issue 18's bound: one small file from a 2 GiB generation reads at most this share of the disk. */
const ONE_FILE_MAX_SHARE = 0.05;

const log = (msg) => process.stderr.write(`[bench files] ${msg}\n`);
class BenchError extends Error {}

function usage(code) {
  (code ? process.stderr : process.stdout).write('usage: node bench/files.mjs [--size 2G] [--dir DIR] [--keep] [--json FILE]\n');
  process.exit(code);
}

function options(argv) {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, options: {
      size: { type: 'string', default: '2G' }, dir: { type: 'string' }, json: { type: 'string' },
      keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
    } }));
  } catch (err) { log(err.message); usage(2); }
  if (values.help) usage(0);
  const m = /^(\d+)([MG])$/i.exec(values.size);
  if (!m) { log(`bad --size: ${values.size} (e.g. 2G, 1536M)`); usage(2); }
  const size = Number(m[1]) * (m[2].toUpperCase() === 'G' ? GiB : MiB);
  if (size < GiB + 256 * MiB) { log('--size must leave room for the 1 GiB file: at least 1280M'); usage(2); }
  return {
    size,
    dir: path.resolve(values.dir ?? path.join(repoRoot, 'bench/out-files')),
    json: values.json ? path.resolve(values.json) : null,
    keep: values.keep,
  };
}

/** Runs a command; resolves with stdout and wall seconds, rejects with its stderr's tail. */
function run(label, cmd, args, env = process.env) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => reject(new BenchError(`${label}: cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code !== 0) reject(Object.assign(new BenchError(`${label} failed (${signal ?? `exit ${code}`}): ${[cmd, ...args].join(' ')}\n${stderr.trim().split('\n').slice(-15).join('\n')}`), { code }));
      else resolve({ stdout, stderr, seconds });
    });
  });
}

function sha256File(file) {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  for (let pos = 0; ;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

/** Incompressible, deterministic bytes, fast: an AES-128-CTR keystream (as bench/disk-image.mjs makes its random data). */
function writeKeystream(file, bytes, seed) {
  const key = crypto.createHash('sha256').update(`files-bench:${seed}`).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(8 * MiB);
  const fd = fs.openSync(file, 'w');
  for (let done = 0; done < bytes; done += zeros.length) fs.writeSync(fd, cipher.update(zeros.subarray(0, Math.min(zeros.length, bytes - done))));
  fs.closeSync(fd);
}

/** The tree in a staging directory, and each file's SHA-256 by its path in the filesystem. */
function stageTree(stage) {
  const digests = new Map();
  const put = (p, content) => {
    const file = path.join(stage, p);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    digests.set(p, crypto.createHash('sha256').update(content).digest('hex'));
  };
  put('/etc/hostname', 'files-bench\n');
  for (let i = 0; i < SMALL_FILES; i++) {
    put(`/small/file-${String(i).padStart(4, '0')}.txt`, crypto.createHash('sha512').update(`small ${i}`).digest('hex').repeat(SMALL_SIZE / 128));
  }
  const big = path.join(stage, 'big/one-gib.bin');
  fs.mkdirSync(path.dirname(big), { recursive: true });
  writeKeystream(big, GiB, 'big');
  digests.set('/big/one-gib.bin', sha256File(big));
  return digests;
}

/** Every regular file under dir, by its path relative to dir, with its SHA-256. */
function digestsUnder(dir) {
  const out = new Map();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(path.relative(dir, p), sha256File(p));
    }
  };
  walk(dir);
  return out;
}

/** Checks that `got` (relative to an extraction directory) holds the originals under `prefix` (`/small` → `small/…`). */
function check(label, got, digests, prefix) {
  let n = 0;
  for (const [p, sha] of digests) {
    if (p !== prefix && !p.startsWith(`${prefix}/`)) continue;
    const rel = path.posix.join(path.posix.basename(prefix), path.posix.relative(prefix, p));
    if (got.get(rel) !== sha) throw new BenchError(`${label}: ${rel} differs from the original (or is missing)`);
    n++;
  }
  if (n === 0 || got.size !== n) throw new BenchError(`${label}: ${got.size} files extracted, ${n} expected`);
  return n;
}

function dirBytes(dir) {
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    bytes += e.isDirectory() ? dirBytes(p) : e.isFile() ? fs.statSync(p).size : 0;
  }
  return bytes;
}

const fmtS = (s) => (s == null ? 'n/a' : s < 10 ? s.toFixed(2) : s.toFixed(1));
const fmtMiB = (b) => (b == null ? 'n/a' : (b / MiB).toFixed(1));
const fmtPct = (x) => (x == null ? 'n/a' : `${(x * 100).toFixed(2)} %`);

async function main() {
  const opt = options(process.argv.slice(2));
  const env = { ...process.env };
  for (const k of ['VMBKP_REPO', 'VMBKP_REPO_PASSWORD_COMMAND', 'VMBKP_KDF_MEMORY']) delete env[k];

  // `vmbkp files --help` would print the main help when there is no such command: ask the list.
  const help = await run('vmbkp --help', process.execPath, [vmbkpBin, '--help'], env);
  if (!/^\s+files\b/m.test(help.stdout)) {
    log('vmbkp has no `files` command in this build: nothing to measure yet');
    process.exit(3);
  }

  fs.rmSync(opt.dir, { recursive: true, force: true });
  fs.mkdirSync(opt.dir, { recursive: true });
  const d = (...p) => path.join(opt.dir, ...p);
  const { ext4Image } = await import(pathToFileURL(path.join(repoRoot, 'dist/test/fs-images.js')).href);
  const results = { date: new Date().toISOString(), host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / GiB), node: process.version, load: os.loadavg() }, size: opt.size, steps: [] };
  let failed = false;
  try {
    log(`staging the tree (1,000 small files, 1 GiB file) and making a ${fmtMiB(opt.size)} MiB GPT + ext4 image`);
    const digests = stageTree(d('stage'));
    const img = d('disk.img');
    const made = Date.now();
    await ext4Image(img, d('stage'), opt.size, 'data');
    results.imageSeconds = (Date.now() - made) / 1000;
    fs.rmSync(d('stage'), { recursive: true, force: true });

    const passwordFile = d('repo.pass');
    fs.writeFileSync(passwordFile, 'vmbkp-files-bench\n');
    env.VMBKP_REPO_PASSWORD_FILE = passwordFile;
    const repo = d('repo');
    const vmbkp = (label, args) => run(label, process.execPath, [vmbkpBin, ...args], env);
    await vmbkp('init', ['init', '--repo', repo]);
    log('backing the image up');
    const backup = await vmbkp('backup', ['backup', '--repo', repo, '--set', SET, `sda=file:${img}`]);
    results.backupSeconds = backup.seconds;
    const repoBytes = dirBytes(repo);
    results.repositoryBytes = repoBytes;

    const step = (name, seconds, bytesRead, extra = {}) => {
      const s = { name, seconds, bytesRead, ...extra };
      results.steps.push(s);
      log(`${name}: ${fmtS(seconds)} s, ${bytesRead == null ? 'n/a' : `${fmtMiB(bytesRead)} MiB`} read`);
      return s;
    };
    const common = ['--repo', repo, '--set', SET];

    log('files list');
    const list = await vmbkp('files list', ['files', 'list', ...common, '--json']);
    const listed = JSON.parse(list.stdout);
    step('list', list.seconds, listed.bytesRead, { filesystems: listed.filesystems.map((f) => `${f.name} ${f.type}`).join(', ') });

    for (const [name, src] of [['1 file', '/etc/hostname'], ['1,000 small files', '/small'], ['1 GiB file', '/big/one-gib.bin']]) {
      log(`files get ${src}`);
      const to = d('get', name.replace(/\W+/g, '-'));
      const r = await vmbkp(`files get ${src}`, ['files', 'get', ...common, src, '--to', to, '--json']);
      const j = JSON.parse(r.stdout);
      const files = check(`files get ${src}`, digestsUnder(to), digests, src);
      step(name, r.seconds, j.bytesRead, { files, bytes: j.bytes });
      fs.rmSync(to, { recursive: true, force: true });
    }

    log('restoring the whole disk');
    const restored = d('restored.img');
    const r = await vmbkp('restore', ['restore', ...common, '--disk', 'sda', '--to', `file:${restored}`]);
    step('restore whole disk', r.seconds, null, { repositoryBytes: repoBytes });

    const kernel = await kernelMount(restored, d('mnt'), d('kernel-copy'), digests);
    if (kernel.note) results.kernelNote = kernel.note;
    else step('kernel: loop mount + copy of 1 file, 1,000 files, 1 GiB', r.seconds + kernel.seconds, null, { repositoryBytes: repoBytes, mountSeconds: kernel.mountSeconds, copySeconds: kernel.copySeconds });
    fs.rmSync(restored, { force: true });

    const one = results.steps.find((s) => s.name === '1 file');
    results.oneFileShare = one.bytesRead / opt.size;
    results.oneFilePass = results.oneFileShare <= ONE_FILE_MAX_SHARE;
  } catch (err) {
    failed = true;
    log(err instanceof BenchError ? err.message : err.stack);
  } finally {
    if (!opt.keep && !failed) fs.rmSync(opt.dir, { recursive: true, force: true });
  }
  if (opt.json) fs.writeFileSync(opt.json, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(report(results));
  process.exit(failed ? 1 : 0);
}

/** Mounts the restored image's partition through a loop device (root), copies the same files, checks them. */
async function kernelMount(img, mnt, copyTo, digests) {
  if (process.getuid?.() !== 0) return { note: 'not root: no loop mount' };
  fs.mkdirSync(mnt, { recursive: true });
  fs.mkdirSync(copyTo, { recursive: true });
  let mounted = false;
  try {
    const m = await run('mount', 'mount', ['-o', `ro,loop,offset=${MiB}`, img, mnt]).catch((e) => e);
    if (m instanceof Error) return { note: `loop mount not available here: ${m.message.split('\n').pop()}` };
    mounted = true;
    const c = await run('cp', 'cp', ['-a', path.join(mnt, 'etc/hostname'), path.join(mnt, 'small'), path.join(mnt, 'big/one-gib.bin'), copyTo]);
    const got = digestsUnder(copyTo);
    for (const [p, sha] of digests) {
      const rel = p.startsWith('/small/') ? p.slice(1) : path.posix.basename(p);
      if (got.get(rel) !== sha) throw new BenchError(`kernel copy: ${rel} differs from the original`);
    }
    return { seconds: m.seconds + c.seconds, mountSeconds: m.seconds, copySeconds: c.seconds };
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
    fs.rmSync(copyTo, { recursive: true, force: true });
  }
}

function report(r) {
  const lines = [
    `## vmbkp files (${r.date.slice(0, 10)})`, '',
    `Disk: ${fmtMiB(r.size)} MiB, GPT + ext4; backup ${fmtS(r.backupSeconds)} s; repository ${fmtMiB(r.repositoryBytes)} MiB.`,
    `Machine: ${r.host.cpus} × ${r.host.cpu}, ${r.host.memGiB} GiB, Node ${r.host.node}, load ${r.host.load.map((x) => x.toFixed(1)).join(' ')} at the start.`, '',
    '| step | wall s | read from the repository, MiB | share of the disk |',
    '|---|---:|---:|---:|',
  ];
  for (const s of r.steps) {
    const read = s.bytesRead ?? s.repositoryBytes ?? null;
    const note = s.bytesRead == null && s.repositoryBytes != null ? ' (all stored data)' : '';
    lines.push(`| ${s.name} | ${fmtS(s.seconds)} | ${fmtMiB(read)}${note} | ${read == null ? 'n/a' : fmtPct(read / r.size)} |`);
  }
  if (r.kernelNote) lines.push('', `Kernel mount: ${r.kernelNote}.`);
  if (r.oneFileShare != null) lines.push('', `One small file read ${fmtPct(r.oneFileShare)} of the disk (bound ≤ ${ONE_FILE_MAX_SHARE * 100} %): ${r.oneFilePass ? 'PASS' : 'MISS'}.`);
  return `${lines.join('\n')}\n`;
}

main();
