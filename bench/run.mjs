#!/usr/bin/env node
// vmbkp benchmark: vmbkp against restic and borg on the same disk images, in one run.
//
//   npm run bench -- [--size 2G] [--dir bench/out] [--keep] [--json FILE] [--tools vmbkp,restic,borg] [--plaintext-first] [--no-s3]
//   node bench/run.mjs ...                       (after `npm run build`)
//   npm run bench -- --files [--size 2G] ...     (vmbkp files: bench/files.mjs)
//   npm run bench -- --workload ext4 --size 1G --no-s3   (real files: bench/ext4-image.mjs)
//   npm run bench -- --scale [--entries N] ...   (repository size: bench/scale.mjs)
//   npm run bench -- --sparse [--sizes 1G,64G,1T] (sparse disks: bench/sparse.mjs)
//
// --workload ext4 replaces the synthetic images with an ext4 file system of real files (mkfs.ext4
// -d of Go's, Python's and Perl's installed trees, ~540 MB) and its next generation with files
// removed and added in place (debugfs), with the changed extents found by comparing the two
// images block-wise; every step below runs on them the same way.
//
// vmbkp runs twice on the same images: on an encrypted repository (`vmbkp init` as users get
// it: AES-256-GCM, HMAC-SHA256 chunk ids, the default scrypt parameters) and on a plaintext one
// (`init --encryption none`), step by step, the encrypted one first (--plaintext-first swaps
// them). The section "Encryption" gives the ratios of issue 14: encrypted ÷ plaintext time
// (≤ 1.10), restic ÷ encrypted vmbkp time (≥ 1.8), and the repositories' sizes.
//
// Images come from bench/disk-image.mjs: a sparse base image (seed 1) and its next
// generation with 3 % of it rewritten (seed 2), with the changed extents as CBT would give them.
// Every tool backs up the same path, <dir>/work/disk.img: first with the base content, then
// with the next generation's content, and restores the newest and the oldest generation.
// vmbkp's next generation is an incr given the changed extents; a third generation is a diff
// (the whole disk read and compared with the previous generation) of the same content.
// The oldest generation is also served with `vmbkp serve` and read whole by nbdcopy (to null:
// and to a file), for instant access beside restore (when nbdcopy is installed).
//
// On S3: unless --no-s3, the encrypted vmbkp repository also lives in a bucket on a real S3
// server, Ceph's RADOS Gateway on loopback (scripts/s3.mjs, started here with an OSD of
// max(8 GiB, 2 × the image), stopped at the end, on failure and on SIGINT/SIGTERM; skipped
// with a note when Ceph is not installed). Its full backup, incr (the same changed extents)
// and restore of the newest generation run right after the same local steps; the section
// "Object storage" gives backup and restore speed on RGW ÷ local-directory speed (bound
// ≥ 0.6 each), the retries the commands counted, the CPU the server's daemons used during
// each step (/proc/PID/stat, utime + stime: the 2 cores are shared) and its requests (RGW's
// perf counters through its admin socket, sizes and latencies from its access log).
//
// The work directory holds images/, work/, repos/, restore/ and caches/ (restic's cache and
// BORG_BASE_DIR): these are emptied at the start and removed at the end unless --keep, or
// unless the run failed, so that what went wrong can be looked at.
//
// Progress goes to stderr; the report (Markdown) to stdout. Exit status: 0 when every command
// succeeded and every restore matched its source (a missed target is a figure, not a failure);
// 1 when a command failed or a restored image's SHA-256 differs from its source; 2 on bad usage.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseCliArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const generator = path.join(here, 'disk-image.mjs');
const ext4Generator = path.join(here, 'ext4-image.mjs');
const vmbkpBin = path.join(repoRoot, 'bin/vmbkp.js');
const GNU_TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
const CHANGE_PERCENT = 3;
const SET = 'bench';
const DISK = 'disk0';
const RESTIC_PASSWORD = 'vmbkp-bench';
const BORG_PASSPHRASE = 'vmbkp-bench';
const ALL_TOOLS = ['vmbkp', 'restic', 'borg'];
const VMBKP_PASSWORD = 'vmbkp-bench';
/** The two vmbkp repositories of a run: `init` as users get it (encrypted), and `--encryption none`. */
const VMBKP_VARIANTS = [
  { key: 'vmbkp', name: 'vmbkp', title: 'vmbkp (encrypted)', encrypted: true, init: [] },
  { key: 'vmbkpPlain', name: 'vmbkp-plain', title: 'vmbkp (plaintext)', encrypted: false, init: ['--encryption', 'none'] },
];
/** The encrypted repository again, in a bucket on the S3 server (RGW on loopback). */
const VMBKP_S3 = { key: 'vmbkpS3', name: 'vmbkp-s3', title: 'vmbkp on S3 (encrypted; Ceph RGW on loopback)', encrypted: true, init: [], s3: true };
/** `vmbkp list` runs per repository, for the cost of opening one. */
const LIST_RUNS = 3;
/** Issue 14's bounds: encryption costs ≤ 10 % of time, and encrypted vmbkp is ≥ 1.8× restic's speed. */
const ENC_OVER_PLAIN_MAX = 1.10;
const RESTIC_OVER_ENC_MIN = 1.8;
/** The S3 server: scripts/s3.mjs, its OSD at least this large (memstore: RAM, about 2× what is stored), the bucket. */
const s3Script = path.join(repoRoot, 'scripts/s3.mjs');
const S3_MIN_OSD_BYTES = 8 * 1024 ** 3;
const S3_BUCKET = 'vmbkp-bench';
/** What scripts/s3.mjs runs (Debian: ceph-mon ceph-osd radosgw ceph-common). */
const CEPH_COMMANDS = ['monmaptool', 'ceph-mon', 'ceph-osd', 'ceph', 'radosgw', 'radosgw-admin'];
/** Speed on RGW ÷ speed on a local directory, backup and restore: at least this. */
const S3_OVER_LOCAL_MIN = 0.6;

// ---------------------------------------------------------------------------------------------
// Options

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node bench/run.mjs [--size 2G] [--dir DIR] [--keep] [--json FILE] [--tools vmbkp,restic,borg] [--plaintext-first] [--no-s3]\n'
    + '  --size SIZE   image size (K/M/G/T suffix), default 2G\n'
    + '  --dir DIR     work directory, default bench/out (created)\n'
    + '  --keep        keep the images, repositories and restored files\n'
    + '  --json FILE   also write every raw figure to FILE\n'
    + '  --tools LIST  tools to run, default all of vmbkp,restic,borg (restic and borg only if installed);\n'
    + '                vmbkp runs on an encrypted and on a plaintext repository\n'
    + '  --plaintext-first  run each vmbkp step on the plaintext repository before the encrypted one\n'
    + '  --no-s3       skip the steps on an S3 repository (Ceph RGW on loopback, scripts/s3.mjs)\n'
    + '  --workload W  synthetic (default: bench/disk-image.mjs) or ext4 (real files in an ext4 image,\n'
    + '                bench/ext4-image.mjs; --size is the image size, 1G is enough for its ~540 MB)\n');
  process.exit(code);
}

function parseArgs(argv) {
  let values;
  try {
    ({ values } = parseCliArgs({ args: argv, strict: true, options: {
      size: { type: 'string', default: '2G' }, dir: { type: 'string' }, json: { type: 'string' },
      keep: { type: 'boolean', default: false }, tools: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      'plaintext-first': { type: 'boolean', default: false }, 'no-s3': { type: 'boolean', default: false },
      workload: { type: 'string', default: 'synthetic' },
    } }));
  } catch (err) { console.error(err.message); usage(2); }
  if (values.help) usage(0);
  const opt = {
    size: values.size,
    workload: values.workload,
    dir: values.dir === undefined ? path.join(repoRoot, 'bench/out') : path.resolve(values.dir),
    keep: values.keep,
    plaintextFirst: values['plaintext-first'],
    s3: !values['no-s3'],
    json: values.json === undefined ? null : path.resolve(values.json),
    tools: values.tools === undefined ? [...ALL_TOOLS] : values.tools.split(',').map((t) => t.trim()).filter(Boolean),
  };
  if (!['synthetic', 'ext4'].includes(opt.workload)) { console.error(`unknown --workload: ${opt.workload}`); usage(2); }
  if (!/^\d+(\.\d+)?[KMGT]?$/i.test(opt.size)) { console.error(`bad --size: ${opt.size}`); usage(2); }
  for (const t of opt.tools) if (!ALL_TOOLS.includes(t)) { console.error(`unknown tool: ${t}`); usage(2); }
  return opt;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

class BenchError extends Error {}

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try { fs.accessSync(path.join(dir, cmd), fs.constants.X_OK); return path.join(dir, cmd); } catch { /* next */ }
  }
  return null;
}

const hasGnuTime = (() => {
  try {
    fs.accessSync(GNU_TIME, fs.constants.X_OK);
    execFileSync(GNU_TIME, ['-f', '%e %M', 'true'], { stdio: 'ignore' });
    return true;
  } catch { return false; }
})();

const tmpTimeFile = path.join(os.tmpdir(), `vmbkp-bench-time-${process.pid}.txt`);
/** The measured commands running now: a signal stops them before the run ends. */
const running = new Set();
const devNull = fs.openSync('/dev/null', 'w');

/**
 * Runs one command, measured: wall time with hrtime around the whole process, and GNU time's
 * elapsed seconds, maximum RSS (KiB) and CPU seconds (user + system) when /usr/bin/time is
 * there. Throws BenchError when the command fails. stdout is captured unless `stdoutNull`.
 */
function run(label, cmd, args, { cwd = repoRoot, env = process.env, stdoutNull = false } = {}) {
  const argv = hasGnuTime ? ['-f', '%e %M %U %S', '-o', tmpTimeFile, cmd, ...args] : args;
  const exe = hasGnuTime ? GNU_TIME : cmd;
  if (hasGnuTime) fs.rmSync(tmpTimeFile, { force: true });
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    // Its own process group, so that a signal to the bench stops the command (GNU time does not pass SIGTERM on).
    const child = spawn(exe, argv, { cwd, env, detached: true, stdio: ['ignore', stdoutNull ? devNull : 'pipe', 'pipe'] });
    running.add(child);
    const out = [];
    const err = [];
    child.stdout?.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => reject(new BenchError(`${label}: cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      running.delete(child);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      let timeElapsed = null;
      let maxRssKiB = null;
      let cpuSeconds = null;
      if (hasGnuTime) {
        try {
          const lines = fs.readFileSync(tmpTimeFile, 'utf8').trim().split('\n');
          const m = /^([\d.]+) (\d+) ([\d.]+) ([\d.]+)$/.exec(lines[lines.length - 1].trim());
          if (m) { timeElapsed = Number(m[1]); maxRssKiB = Number(m[2]); cpuSeconds = Math.round((Number(m[3]) + Number(m[4])) * 100) / 100; }
        } catch { /* no figures */ }
      }
      if (code !== 0) {
        const tail = stderr.trim().split('\n').slice(-20).join('\n');
        reject(new BenchError(`${label} failed (${signal ? `signal ${signal}` : `exit status ${code}`}): ${[cmd, ...args].join(' ')}\n${tail}`));
        return;
      }
      resolve({ label, command: [cmd, ...args], cwd, seconds, timeElapsed, maxRssKiB, cpuSeconds, stdout, stderr });
    });
  });
}

/** An unmeasured helper command; throws on failure. */
function sh(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB, ...opts }).toString('utf8');
  } catch (e) {
    throw new BenchError(`${[cmd, ...args].join(' ')} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

const duBytes = (dir) => Number(sh('du', ['-sb', dir]).split(/\s+/)[0]);
/** Bytes and number of the regular files under dir: what a repository stores, without du's directory sizes. */
function fileBytes(dir) {
  let bytes = 0;
  let files = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { const x = fileBytes(p); bytes += x.bytes; files += x.files; } else if (e.isFile()) { bytes += fs.statSync(p).size; files++; }
  }
  return { bytes, files };
}
const cpSparse = (from, to) => sh('cp', ['--sparse=always', from, to]);
/** Reads a file once so that it is in the page cache, as it is for every tool. */
const warm = (file) => execFileSync('cat', [file], { stdio: ['ignore', devNull, 'inherit'] });
/** Writes dirty pages back between steps, so one step's writeback is not billed to the next. */
const syncDisks = () => execFileSync('sync', [], { stdio: 'ignore' });

function sha256File(file) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  const h = crypto.createHash('sha256');
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

function findFile(dir, name) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { const f = findFile(p, name); if (f) return f; } else if (e.name === name) return p;
  }
  return null;
}

/** Parses the one JSON object a command printed (tolerating lines around it). */
function parseJsonOutput(label, stdout) {
  const s = stdout.trim();
  try { return JSON.parse(s); } catch { /* look for the object */ }
  const a = s.indexOf('{');
  const b = s.lastIndexOf('}');
  if (a >= 0 && b > a) { try { return JSON.parse(s.slice(a, b + 1)); } catch { /* fall through */ } }
  throw new BenchError(`${label}: expected one JSON object on stdout, got: ${s.slice(0, 500)}`);
}

const fmtS = (s) => (s == null ? 'n/a' : s < 10 ? s.toFixed(2) : s.toFixed(1));
const fmtMiB = (b) => (b == null ? 'n/a' : (b / MiB).toFixed(1));
const fmtRss = (kib) => (kib == null ? 'n/a' : String(Math.round(kib / 1024)));
const fmtX = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(x < 10 ? 2 : 1)}×`);

// ---------------------------------------------------------------------------------------------
// The run

const results = {
  started: new Date().toISOString(),
  options: null,
  machine: null,
  notes: [],
  images: {},
  limits: {},
  tools: {},
  checks: [],
  targets: [],
};

function machineInfo(tools) {
  let model = 'unknown';
  try { model = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model; } catch { /* not Linux */ }
  let nproc = os.availableParallelism();
  try { nproc = Number(sh('nproc', []).trim()); } catch { /* keep */ }
  const version = (cmd, args) => { try { return sh(cmd, args).trim().split('\n')[0]; } catch { return null; } };
  let fsType = null;
  try { fsType = sh('stat', ['-f', '-c', '%T', results.options.dir]).trim(); } catch { /* unknown */ }
  return {
    nproc,
    cpu: model,
    memTotalMiB: Math.round(os.totalmem() / MiB),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    restic: tools.restic ? version('restic', ['version']) : null,
    borg: tools.borg ? version('borg', ['--version']) : null,
    gnuTime: hasGnuTime,
    workDirFs: fsType,
  };
}

/** Step record: what the report and the JSON need. */
function step(r, extra = {}) {
  return { seconds: r.seconds, timeElapsed: r.timeElapsed, maxRssKiB: r.maxRssKiB, cpuSeconds: r.cpuSeconds ?? null, command: r.command, ...extra };
}

function progress(tool, name, r, extra = '') {
  log(`${tool}: ${name}: ${fmtS(r.seconds)} s, CPU ${fmtS(r.cpuSeconds)} s, peak RSS ${fmtRss(r.maxRssKiB)} MiB${extra}`);
}

function verify(tool, what, file, expected, expectedName) {
  const actual = sha256File(file);
  const ok = actual === expected;
  results.checks.push({ tool, what, file, expected, actual, ok, source: expectedName });
  if (ok) log(`${tool}: ${what}: SHA-256 matches ${expectedName}`);
  else log(`${tool}: ${what}: SHA-256 MISMATCH: ${file} is ${actual}, ${expectedName} is ${expected}`);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The S3 server (scripts/s3.mjs): Ceph's RADOS Gateway on loopback

/** The server of this run while it runs: stopped at the end, on failure and on a signal. */
let s3Server = null;

const CLK_TCK = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; } })();

/** Why the S3 steps cannot run here (the Ceph commands scripts/s3.mjs needs), or null. */
function cephMissing() {
  const missing = CEPH_COMMANDS.filter((c) => !onPath(c));
  return missing.length ? `Ceph is not installed (${missing.join(', ')} not found; Debian: apt-get install ceph-mon ceph-osd radosgw ceph-common)` : null;
}

/**
 * Starts scripts/s3.mjs and waits for its JSON line. Its stdin stays open: the end of it (this
 * process exiting, however it exits) stops the server, so nothing outlives the run.
 */
async function startS3Server(osdBytes) {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [s3Script, '--size', String(osdBytes)], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => { /* gone: the exit says why */ });
  let stderr = '';
  child.stderr.on('data', (x) => { stderr = (stderr + x).slice(-8000); });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const server = { child, exited, info: null, osdBytes, stderr: () => stderr };
  s3Server = server;
  const line = await new Promise((resolve, reject) => {
    let out = '';
    const onData = (x) => {
      out += x;
      const i = out.indexOf('\n');
      if (i >= 0) { child.stdout.off('data', onData); resolve(out.slice(0, i)); }
    };
    child.stdout.on('data', onData);
    exited.then(({ code, signal }) => reject(new BenchError(`scripts/s3.mjs exited (${signal ?? code}) before the server was ready: ${stderr.trim()}`)));
  });
  child.stdout.resume();
  server.info = parseJsonOutput('scripts/s3.mjs', line);
  server.startSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  server.rgwLog = path.join(server.info.dir, 'client.rgw.log');
  server.rgwSocket = path.join(server.info.dir, 'client.rgw.asok');
  try { server.pids = fs.readFileSync(path.join(server.info.dir, 'pids'), 'utf8').split(/\s+/).filter(Boolean).map(Number); } catch { server.pids = []; }
  return server;
}

/** Stops the server (end of stdin; SIGTERM after 30 s, SIGKILL after 60 s) and waits until it is gone. */
async function stopS3Server() {
  const server = s3Server;
  if (!server) return null;
  s3Server = null;
  const started = process.hrtime.bigint();
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    child.stdin.end();
    const term = setTimeout(() => child.kill('SIGTERM'), 30_000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 60_000); // its watchdog then kills the daemons and removes the directory
    await server.exited;
    clearTimeout(term); clearTimeout(kill);
  }
  const { code, signal } = await server.exited;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (server.info && fs.existsSync(server.info.dir)) log(`s3: ${server.info.dir} is still there after the server stopped`);
  const alive = (server.pids ?? []).filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
  if (alive.length) log(`s3: daemons ${alive.join(' ')} still running after the server stopped`);
  log(`s3: server stopped in ${fmtS(seconds)} s (${signal ?? `exit status ${code}`})`);
  return { seconds, code, signal };
}

/** CPU seconds (utime + stime, every thread) of the server's daemons, by name (ceph-mon, ceph-osd, radosgw). */
function daemonCpu(server) {
  const out = {};
  let pids = [];
  try { pids = fs.readFileSync(path.join(server.info.dir, 'pids'), 'utf8').split(/\s+/).filter(Boolean).map(Number); } catch { return null; }
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
    } catch { /* gone */ }
  }
  return out;
}

/** One command to a Ceph admin socket: the command as JSON and a NUL; the answer is a 32-bit length and JSON. */
function adminSocket(sock, prefix) {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const chunks = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${sock}: no answer within 10 s`)); }, 10_000);
    s.on('connect', () => s.write(`${JSON.stringify({ prefix })}\0`));
    s.on('data', (x) => chunks.push(x));
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('end', () => {
      clearTimeout(timer);
      const b = Buffer.concat(chunks);
      try { resolve(JSON.parse(b.subarray(4, 4 + b.readUInt32BE(0)).toString('utf8'))); } catch (e) { reject(e); }
    });
  });
}

/** What the server has done so far: its daemons' CPU, RGW's request counters, where its access log ends. */
async function serverSnapshot(server) {
  let rgw = null;
  try {
    const c = (await adminSocket(server.rgwSocket, 'perf dump')).rgw;
    rgw = { req: c.req, failedReq: c.failed_req, get: c.get, getBytes: c.get_b, put: c.put, putBytes: c.put_b };
  } catch (e) { log(`s3: RGW's perf counters unreadable: ${e.message}`); }
  let logBytes = null;
  try { logBytes = fs.statSync(server.rgwLog).size; } catch { /* no log */ }
  return { cpu: daemonCpu(server), rgw, logBytes };
}

const ACCESS_LINE = /beast: \S+ \S+ - \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-) .* latency=([\d.]+)s/;

/** RGW's access-log lines from `from` on: per method, requests, bytes (the body sent or received), sizes and latencies. */
function accessLog(server, from, end) {
  const out = {};
  let text = '';
  try {
    const fd = fs.openSync(server.rgwLog, 'r');
    const buf = Buffer.alloc(Math.max(0, end - from));
    fs.readSync(fd, buf, 0, buf.length, from);
    fs.closeSync(fd);
    text = buf.toString('utf8');
  } catch { return null; }
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line);
    if (!m) continue;
    const [, method, , status, size, latency] = m;
    const o = (out[method] ??= { count: 0, bytes: 0, sizes: [], latencies: [], statuses: {} });
    o.count++;
    const n = size === '-' ? 0 : Number(size);
    o.bytes += n;
    o.sizes.push(n);
    o.latencies.push(Number(latency));
    o.statuses[status] = (o.statuses[status] ?? 0) + 1;
  }
  return out;
}

/** Sizes and latencies of one method's requests, for the report and the JSON. */
function requestSummary(o) {
  if (!o) return null;
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const lat = [...o.latencies].sort((a, b) => a - b);
  const q = (a, f) => (a.length ? a[Math.min(a.length - 1, Math.floor(f * a.length))] : null);
  const buckets = { under1MiB: 0, from1to4MiB: 0, from4to8MiB: 0, atLeast8MiB: 0 };
  for (const n of sizes) {
    if (n < MiB) buckets.under1MiB++; else if (n < 4 * MiB) buckets.from1to4MiB++; else if (n < 8 * MiB) buckets.from4to8MiB++; else buckets.atLeast8MiB++;
  }
  return {
    count: o.count, bytes: o.bytes, statuses: o.statuses,
    minBytes: sizes[0] ?? null, medianBytes: q(sizes, 0.5), maxBytes: sizes[sizes.length - 1] ?? null, meanBytes: o.count ? o.bytes / o.count : null,
    sizeBuckets: buckets,
    latencySecondsSum: lat.reduce((a, b) => a + b, 0), latencyMedianSeconds: q(lat, 0.5), latencyP90Seconds: q(lat, 0.9), latencyMaxSeconds: lat[lat.length - 1] ?? null,
  };
}

/** What the server did between two snapshots: CPU by daemon, RGW's counters, the requests by method. */
async function serverDelta(server, before) {
  const after = await serverSnapshot(server);
  const cpu = {};
  if (before.cpu && after.cpu) for (const k of Object.keys(after.cpu)) cpu[k] = Math.round((after.cpu[k] - (before.cpu[k] ?? 0)) * 100) / 100;
  const cpuTotal = Object.values(cpu).reduce((a, b) => a + b, 0);
  let rgw = null;
  if (before.rgw && after.rgw) rgw = Object.fromEntries(Object.keys(after.rgw).map((k) => [k, after.rgw[k] - before.rgw[k]]));
  // The access log is written by a log thread: wait (up to 3 s) until it holds the requests the counters saw.
  let requests = null;
  if (before.logBytes != null) {
    for (let i = 0; i < 30; i++) {
      let end = after.logBytes;
      try { end = fs.statSync(server.rgwLog).size; } catch { /* keep */ }
      requests = accessLog(server, before.logBytes, end);
      const seen = requests ? Object.values(requests).reduce((n, o) => n + o.count, 0) : 0;
      if (!rgw || seen >= rgw.req) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const byMethod = requests ? Object.fromEntries(Object.entries(requests).map(([k, o]) => [k, requestSummary(o)])) : null;
  return { cpuSeconds: cpu, cpuSecondsTotal: Math.round(cpuTotal * 100) / 100, rgw, requests: byMethod };
}

/**
 * One vmbkp repository under test: its directory, the environment of every command on it
 * (the password file for the encrypted one), and its figures in results.tools[key].
 */
function vmbkpVariant(d, v, server = null) {
  const env = { ...process.env };
  for (const k of ['VMBKP_REPO', 'VMBKP_REPO_PASSWORD_FILE', 'VMBKP_REPO_PASSWORD_COMMAND', 'VMBKP_KDF_MEMORY']) delete env[k];
  if (v.encrypted) env.VMBKP_REPO_PASSWORD_FILE = d.passwordFile;
  if (server) {
    // The server's own user, and nothing from this shell's AWS set-up.
    for (const k of Object.keys(env)) if (k.startsWith('AWS_') || k === 'VMBKP_S3_CA_FILE') delete env[k];
    Object.assign(env, { AWS_ACCESS_KEY_ID: server.info.accessKeyId, AWS_SECRET_ACCESS_KEY: server.info.secretAccessKey, AWS_REGION: server.info.region });
  }
  const t = { title: v.title, encrypted: v.encrypted, steps: {} };
  results.tools[v.key] = t; // partial figures survive a failure
  return {
    ...v, env, t,
    repo: server ? `s3:${server.info.endpoint}/${S3_BUCKET}` : path.join(d.repos, v.key),
    vm: (label, args) => run(`${v.name} ${label}`, process.execPath, [vmbkpBin, ...args], { env }),
  };
}

/**
 * vmbkp, encrypted (the default) and plaintext (`init --encryption none`), step by step: each
 * step runs on one repository and then on the other, from the same disk file and the same warm
 * page cache, so that the machine's noise falls on both alike. The extras (nbdkit, serve) run
 * on the encrypted repository only: it is what users get.
 */
async function benchVmbkp(d, img, plaintextFirst, server) {
  if (!fs.existsSync(vmbkpBin)) throw new BenchError(`${vmbkpBin} not found: the vmbkp CLI is missing`);
  fs.writeFileSync(d.passwordFile, `${VMBKP_PASSWORD}\n`, { mode: 0o600 });
  const enc = vmbkpVariant(d, VMBKP_VARIANTS[0]);
  const plain = vmbkpVariant(d, VMBKP_VARIANTS[1]);
  /** The S3 repository's steps follow the same local steps; the rest (diff, restore oldest, list, serve, nbdkit) are local only. */
  const s3 = server ? vmbkpVariant(d, VMBKP_S3, server) : null;
  /** While the server runs, every step records what its daemons did meanwhile (for the local steps: idling). */
  const measured = async (fn) => {
    const snap = server ? await serverSnapshot(server) : null;
    const res = await fn();
    return { res, server: snap ? await serverDelta(server, snap) : undefined };
  };
  const variants = plaintextFirst ? [plain, enc] : [enc, plain];
  const source = `${DISK}=file:${d.disk}`;
  const each = async (fn) => { for (const v of variants) await fn(v); };

  cpSparse(img.base, d.disk); syncDisks(); warm(d.disk);
  const before = {};
  await each(async (v) => {
    const r = await v.vm('init', ['init', '--repo', v.repo, '--json', ...v.init]);
    v.t.steps.init = step(r); progress(v.name, 'init', r);
    before[v.key] = duBytes(v.repo);
  });
  if (s3) {
    const { res: r, server: srv } = await measured(() => s3.vm('init', ['init', '--repo', s3.repo, '--json']));
    s3.t.steps.init = step(r, { server: srv }); progress(s3.name, 'init (creates the bucket)', r);
    s3.t.repo = s3.repo;
  }

  const backup = async (v, name, mode, changed) => {
    syncDisks(); warm(d.disk);
    const args = ['backup', '--repo', v.repo, '--set', SET, '--mode', mode, '--json'];
    if (changed) args.push('--changed', `${DISK}=${changed}`);
    args.push(source);
    const { res, server: srv } = await measured(() => v.vm(`backup ${mode}`, args));
    const manifest = parseJsonOutput(`${v.name} backup ${mode}`, res.stdout);
    if (v.s3) {
      const s = step(res, {
        bytesStored: manifest.disks?.reduce((n, x) => n + (x.bytesStored ?? 0), 0) ?? null,
        bytesRead: manifest.disks?.reduce((n, x) => n + (x.bytesRead ?? 0), 0) ?? null,
        chunksStored: manifest.disks?.reduce((n, x) => n + (x.chunksStored ?? 0), 0) ?? null,
        retries: manifest.storage?.retries ?? null, retriesByCause: manifest.storage?.retriesByCause ?? null, server: srv, manifest,
      });
      v.t.steps[name] = s;
      progress(v.name, `backup ${mode} (generation ${manifest.generation})`, res, s3Extra(s));
      return manifest;
    }
    const after = duBytes(v.repo);
    // The per-disk figures, whether under `stats` or on the disk entry itself.
    const figure = (k) => (manifest.disks ?? []).reduce((sum, x) => sum + (x.stats?.[k] ?? x[k] ?? 0), 0);
    const bytesStored = figure('bytesStored');
    const bytesRead = figure('bytesRead');
    const chunksStored = figure('chunksStored');
    const growth = after - before[v.key];
    v.t.steps[name] = step(res, { repoBytesBefore: before[v.key], repoBytesAfter: after, growthBytes: growth, bytesStored, bytesRead, chunksStored, manifest, server: srv });
    progress(v.name, `backup ${mode} (generation ${manifest.generation})`, res,
      `, repo +${fmtMiB(growth)} MiB, bytesStored ${fmtMiB(bytesStored)} MiB, bytesRead ${fmtMiB(bytesRead)} MiB`);
    before[v.key] = after;
    return manifest;
  };

  const fullGeneration = {};
  await each(async (v) => { fullGeneration[v.key] = (await backup(v, 'full', 'full', null)).generation ?? 1; });
  if (s3) await backup(s3, 'full', 'full', null);
  cpSparse(img.gen1, d.disk);
  await each((v) => backup(v, 'next', 'incr', img.extents));
  if (s3) await backup(s3, 'next', 'incr', img.extents);
  // diff: no extents; vmbkp reads the whole disk and compares it with the previous generation.
  await each((v) => backup(v, 'diff', 'diff', null));

  const restore = async (v, name, generation, expected, expectedName) => {
    const to = path.join(d.restore, `${v.key}-${name}.img`);
    fs.rmSync(to, { force: true });
    syncDisks();
    // --json on S3 for the retries it counted (restore --json reports them as backup does).
    const args = ['restore', '--repo', v.repo, '--set', SET, '--generation', String(generation), '--disk', DISK, '--to', `file:${to}`, ...(v.s3 ? ['--json'] : [])];
    const { res, server: srv } = await measured(() => v.vm(`restore ${name}`, args));
    let extra = { server: srv };
    if (v.s3) {
      const out = parseJsonOutput(`${v.name} restore ${name}`, res.stdout);
      extra = { ...extra, retries: out.storage?.retries ?? null, retriesByCause: out.storage?.retriesByCause ?? null, bytesWritten: out.bytesWritten ?? null, restoredGeneration: out.generation ?? null };
    }
    progress(v.name, `restore ${name} (generation ${generation})`, res, v.s3 ? s3Extra(extra) : '');
    syncDisks();
    const ok = verify(v.name, `restore ${name}`, to, expected, expectedName);
    v.t.steps[name === 'newest' ? 'restoreNewest' : 'restoreOldest'] = step(res, { generation, sha256ok: ok, ...extra });
    if (!d.keep && ok) fs.rmSync(to, { force: true }); // a wrong image is kept to look at
  };
  await each((v) => restore(v, 'newest', 'latest', img.sha.gen1, 'gen1.img'));
  if (s3) await restore(s3, 'newest', 'latest', img.sha.gen1, 'gen1.img');
  await each((v) => restore(v, 'oldest', fullGeneration[v.key], img.sha.base, 'base.img'));

  // Instant access: the oldest generation served over NBD (vmbkp serve), read by nbdcopy.
  if (onPath('nbdcopy')) await benchServe(d, img, enc, fullGeneration[enc.key]);

  // The same full backup read through NBD: nbdkit's file plugin (allocation from SEEK_DATA) on a Unix socket.
  if (onPath('nbdkit')) {
    const t = enc.t;
    const nbdRepo = path.join(d.repos, 'vmbkp-nbd');
    cpSparse(img.base, d.disk); syncDisks(); warm(d.disk);
    await enc.vm('init (nbd)', ['init', '--repo', nbdRepo]);
    const sock = path.join(d.work, 'nbdkit.sock');
    fs.rmSync(sock, { force: true });
    const server = spawn('nbdkit', ['--foreground', '--exit-with-parent', '--readonly', '-U', sock, 'file', d.disk], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 400 && !fs.existsSync(sock); i++) await new Promise((res) => setTimeout(res, 25));
      const res = await enc.vm('backup full (nbdkit file)', ['backup', '--repo', nbdRepo, '--set', SET, '--mode', 'full', '--json', `${DISK}=nbd+unix:///?socket=${sock}`]);
      const manifest = parseJsonOutput('vmbkp backup full (nbdkit file)', res.stdout);
      const bytesRead = (manifest.disks ?? []).reduce((n, x) => n + (x.bytesRead ?? 0), 0);
      t.steps.nbdFull = step(res, { growthBytes: duBytes(nbdRepo), bytesStored: (manifest.disks ?? []).reduce((n, x) => n + (x.bytesStored ?? 0), 0), bytesRead, manifest });
      progress('vmbkp', 'backup full through nbdkit file', res, `, bytesRead ${fmtMiB(bytesRead)} MiB`);
    } finally {
      server.kill('SIGTERM');
    }
  }

  // What opening a repository costs: `vmbkp list` of each, alternated LIST_RUNS times. The
  // encrypted one derives the key from the password (scrypt) and opens sealed manifests.
  const listSeconds = { [enc.key]: [], [plain.key]: [] };
  const listCpu = { [enc.key]: [], [plain.key]: [] };
  for (let i = 0; i < LIST_RUNS; i++) {
    await each(async (v) => {
      const r = await v.vm('list', ['list', '--repo', v.repo, '--json']);
      listSeconds[v.key].push(r.seconds);
      if (r.cpuSeconds != null) listCpu[v.key].push(r.cpuSeconds);
      if (i === 0) {
        try { v.t.list = JSON.parse(r.stdout); } catch { v.t.list = r.stdout.trim(); }
        v.t.steps.list = step(r);
      }
    });
  }
  for (const v of variants) {
    v.t.listSeconds = listSeconds[v.key];
    v.t.listCpuSeconds = listCpu[v.key];
    v.t.repoBytes = duBytes(v.repo);
    const fb = fileBytes(v.repo);
    v.t.repoFileBytes = fb.bytes;
    v.t.repoFiles = fb.files;
    v.t.chunksStored = ['full', 'next', 'diff'].reduce((n, k) => n + (v.t.steps[k]?.chunksStored ?? 0), 0);
  }
  log(`vmbkp list (open cost), ${LIST_RUNS} runs each: encrypted ${listSeconds[enc.key].map(fmtS).join(' / ')} s, `
    + `plaintext ${listSeconds[plain.key].map(fmtS).join(' / ')} s`);
}

/** Starts `vmbkp serve --json`; resolves with the process, its export and the seconds until it was ready. */
function startServe(args, env) {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [vmbkpBin, 'serve', ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let out = '';
  let err = '';
  child.stderr.on('data', (x) => { err += x; });
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (x) => {
      out += x;
      const i = out.indexOf('\n');
      if (i >= 0) resolve({ info: parseJsonOutput('vmbkp serve', out.slice(0, i)), readySeconds: Number(process.hrtime.bigint() - started) / 1e9 });
    });
    exited.then(({ code }) => reject(new BenchError(`vmbkp serve exited (${code}) before it was ready: ${err.trim()}`)));
  });
  return { child, ready, exited, stderr: () => err };
}

/** Peak resident set size of a running process (KiB), from /proc. */
function peakRssKiB(pid) {
  try { return Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) || null; } catch { return null; }
}

/**
 * vmbkp serve of one generation, read whole by nbdcopy: to null: (reading only), then to a
 * file whose SHA-256 is checked. The times are nbdcopy's; the peak RSS is the server's.
 */
async function benchServe(d, img, v, generation) {
  const t = v.t;
  const server = startServe(['--repo', v.repo, '--set', SET, '--generation', String(generation), '--disk', DISK], v.env);
  try {
    const { info, readySeconds } = await server.ready;
    log(`vmbkp: serve (generation ${generation}) ready in ${fmtS(readySeconds)} s at ${info.uri}`);
    syncDisks();
    let res = await run('nbdcopy from vmbkp serve to null:', 'nbdcopy', [info.uri, 'null:']);
    t.steps.serveRead = step(res, { generation, readySeconds, uri: info.uri, maxRssKiB: peakRssKiB(server.child.pid) });
    progress('vmbkp', `serve generation ${generation}, nbdcopy to null`, t.steps.serveRead, ' (peak RSS of the server)');
    const to = path.join(d.restore, 'vmbkp-serve.img');
    fs.rmSync(to, { force: true });
    syncDisks();
    res = await run('nbdcopy from vmbkp serve to a file', 'nbdcopy', [info.uri, to]);
    syncDisks();
    const ok = verify('vmbkp', 'serve → nbdcopy to a file', to, img.sha.base, 'base.img');
    t.steps.serveCopy = step(res, { generation, sha256ok: ok, maxRssKiB: peakRssKiB(server.child.pid) });
    progress('vmbkp', `serve generation ${generation}, nbdcopy to a file`, t.steps.serveCopy, ' (peak RSS of the server)');
    if (!d.keep && ok) fs.rmSync(to, { force: true });
  } finally {
    server.child.kill('SIGTERM');
    const { code, signal } = await server.exited;
    if (code !== 0) throw new BenchError(`vmbkp serve did not stop cleanly on SIGTERM (${signal ?? `exit status ${code}`}): ${server.stderr().trim()}`);
  }
}

async function benchRestic(d, img) {
  const repo = path.join(d.repos, 'restic');
  const env = { ...process.env, RESTIC_PASSWORD, RESTIC_CACHE_DIR: path.join(d.caches, 'restic') };
  delete env.RESTIC_REPOSITORY; delete env.RESTIC_PASSWORD_FILE; delete env.RESTIC_PASSWORD_COMMAND;
  const rs = (label, args, cwd) => run(`restic ${label}`, 'restic', args, { env, cwd });
  const t = { steps: {} };
  results.tools.restic = t;

  cpSparse(img.base, d.disk); syncDisks(); warm(d.disk);
  let r = await rs('init', ['init', '-r', repo, '--repository-version', '2', '-q']);
  t.steps.init = step(r); progress('restic', 'init', r);
  let before = duBytes(repo);
  const snapshots = [];

  const backup = async (name) => {
    syncDisks(); warm(d.disk);
    const res = await rs(`backup ${name}`, ['-r', repo, 'backup', '-q', '--json', 'disk.img'], d.work);
    let summary = null;
    for (const line of res.stdout.split('\n')) {
      try { const o = JSON.parse(line); if (o.message_type === 'summary') summary = o; } catch { /* not JSON */ }
    }
    const after = duBytes(repo);
    t.steps[name] = step(res, { repoBytesBefore: before, repoBytesAfter: after, growthBytes: after - before, summary });
    progress('restic', `backup ${name}`, res, `, repo +${fmtMiB(after - before)} MiB`);
    before = after;
    snapshots.push(summary?.snapshot_id ?? null);
  };
  await backup('full');
  cpSparse(img.gen1, d.disk);
  await backup('next');

  if (!snapshots[0]) {
    const list = JSON.parse(sh('restic', ['-r', repo, 'snapshots', '--json'], { env }));
    list.sort((a, b) => a.time.localeCompare(b.time));
    snapshots[0] = list[0].id;
  }
  const restore = async (name, snapshot, expected, expectedName) => {
    const target = path.join(d.restore, `restic-${name}`);
    fs.rmSync(target, { recursive: true, force: true });
    fs.mkdirSync(target, { recursive: true });
    syncDisks();
    const res = await rs(`restore ${name}`, ['-r', repo, 'restore', snapshot, '--target', target, '-q']);
    progress('restic', `restore ${name} (${snapshot})`, res);
    syncDisks();
    const file = findFile(target, 'disk.img');
    if (!file) throw new BenchError(`restic restore ${name}: no disk.img under ${target}`);
    const ok = verify('restic', `restore ${name}`, file, expected, expectedName);
    t.steps[name === 'newest' ? 'restoreNewest' : 'restoreOldest'] = step(res, { snapshot, sha256ok: ok });
    if (!d.keep && ok) fs.rmSync(target, { recursive: true, force: true }); // a wrong image is kept to look at
  };
  await restore('newest', 'latest', img.sha.gen1, 'gen1.img');
  await restore('oldest', snapshots[0], img.sha.base, 'base.img');
  t.repoBytes = duBytes(repo);
  return t;
}

async function benchBorg(d, img) {
  const repo = path.join(d.repos, 'borg');
  const env = {
    ...process.env,
    BORG_PASSPHRASE,
    BORG_BASE_DIR: path.join(d.caches, 'borg'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
  delete env.BORG_REPO;
  const bg = (label, args, cwd) => run(`borg ${label}`, 'borg', args, { env, cwd });
  const t = { steps: {} };
  results.tools.borg = t;

  cpSparse(img.base, d.disk); syncDisks(); warm(d.disk);
  let r = await bg('init', ['init', '--encryption=none', repo]);
  t.steps.init = step(r); progress('borg', 'init', r);
  let before = duBytes(repo);

  const backup = async (name, archive) => {
    syncDisks(); warm(d.disk);
    const res = await bg(`create ${archive}`, ['create', '--json', '--compression', 'zstd,3', `${repo}::${archive}`, 'disk.img'], d.work);
    let stats = null;
    try { stats = JSON.parse(res.stdout).archive?.stats ?? null; } catch { /* figures are optional */ }
    const after = duBytes(repo);
    t.steps[name] = step(res, { archive, repoBytesBefore: before, repoBytesAfter: after, growthBytes: after - before, stats });
    progress('borg', `create ${archive}`, res, `, repo +${fmtMiB(after - before)} MiB`);
    before = after;
  };
  await backup('full', 'g1');
  cpSparse(img.gen1, d.disk);
  await backup('next', 'g2');

  const restore = async (name, archive, expected, expectedName) => {
    const target = path.join(d.restore, `borg-${name}`);
    fs.rmSync(target, { recursive: true, force: true });
    fs.mkdirSync(target, { recursive: true });
    syncDisks();
    const res = await bg(`extract ${archive}`, ['extract', '--sparse', `${repo}::${archive}`], target);
    progress('borg', `extract ${name} (${archive})`, res);
    syncDisks();
    const file = findFile(target, 'disk.img');
    if (!file) throw new BenchError(`borg extract ${name}: no disk.img under ${target}`);
    const ok = verify('borg', `restore ${name}`, file, expected, expectedName);
    t.steps[name === 'newest' ? 'restoreNewest' : 'restoreOldest'] = step(res, { archive, sha256ok: ok });
    if (!d.keep && ok) fs.rmSync(target, { recursive: true, force: true }); // a wrong image is kept to look at
  };
  await restore('newest', 'g2', img.sha.gen1, 'gen1.img');
  await restore('oldest', 'g1', img.sha.base, 'base.img');
  t.repoBytes = duBytes(repo);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Report

function report(out) {
  const m = results.machine;
  const { vmbkp, vmbkpPlain, restic, borg } = results.tools;
  const s = (t, k) => t?.steps?.[k];
  const p = (...a) => out.push(a.join(''));

  p('## Benchmark');
  p('');
  p(`- Machine: ${m.nproc} CPUs, ${m.cpu}, ${m.memTotalMiB} MiB RAM, ${m.kernel}; work directory on ${m.workDirFs ?? 'unknown fs'}`);
  p(`- node ${m.node}; ${m.restic ?? 'restic: not run'}; ${m.borg ?? 'borg: not run'}`);
  p(`- Run ${results.started}; image ${results.options.size}: ${fmtMiB(results.images.baseBytes)} MiB apparent, `
    + `${fmtMiB(results.images.baseAllocated)} MiB allocated (base), `
    + (results.images.ext4
      ? `ext4 of real files (${results.images.ext4.base.files} files, ${fmtMiB(results.images.ext4.base.bytes)} MiB from ${results.images.ext4.trees.join(', ')}); `
        + `next generation removes ${results.images.ext4.next.removedFiles} files (${fmtMiB(results.images.ext4.next.removedBytes)} MiB) and adds ${results.images.ext4.next.addedFiles} (${fmtMiB(results.images.ext4.next.addedBytes)} MiB) `
      : `next generation rewrites ${CHANGE_PERCENT} % `)
    + `(${results.images.extentsCount} extents, ${fmtMiB(results.images.extentsBytes)} MiB)`);
  p('- Page cache: nothing is dropped (it cannot be here); instead every image is read once with '
    + '`cat img > /dev/null` before it is measured, so every tool reads from a warm cache alike. '
    + '`sync` runs, unmeasured, before and after every step.');
  p('- Fairness: vmbkp encrypts by default (AES-256-GCM, HMAC-SHA256 chunk ids, the master key wrapped with scrypt at '
    + '64 MiB, derived again by every command): the "vmbkp" columns are that encrypted repository, the "vmbkp plaintext" '
    + 'columns the same steps on `init --encryption none`. '
    + 'restic always encrypts (AES-256 + Poly1305) and compresses (repository v2, compression auto); '
    + 'borg still runs with `--encryption=none` and `--compression zstd,3`, so borg\'s figures are unencrypted: compare them '
    + 'with vmbkp plaintext. '
    + 'restic 0.14 has no sparse restore, so it writes every zero; borg extracts with `--sparse`. '
    + 'vmbkp\'s next generation is `--mode incr` with the changed extents (CBT); restic and borg re-read the whole image.');
  p(`- vmbkp's two repositories run step by step, ${results.options.plaintextFirst ? 'plaintext' : 'encrypted'} first, from the same disk file and warm cache; `
    + 'the nbdkit and serve steps run on the encrypted repository only.');
  p(`- Times are wall seconds of one run each on a noisy ${m.nproc}-CPU machine; compare the ratios within this run. `
    + `Peak RSS is GNU time's maximum resident set size${m.gnuTime ? '' : ' (n/a: /usr/bin/time is missing)'}.`);
  p('');

  const rows = [
    ['full backup', 'full'],
    ['next generation (vmbkp incr; restic/borg re-run)', 'next'],
    ['diff (vmbkp only)', 'diff'],
    ['restore newest', 'restoreNewest'],
    ['restore oldest', 'restoreOldest'],
    ['full backup read through nbdkit file (vmbkp only)', 'nbdFull'],
    ['serve oldest, nbdcopy to null: (vmbkp only)', 'serveRead'],
    ['serve oldest, nbdcopy to a file (vmbkp only)', 'serveCopy'],
  ];
  p('| step | vmbkp s | vmbkp plaintext s | restic s | borg s | vmbkp speed-up vs restic | vmbkp growth MiB | vmbkp plaintext growth MiB | vmbkp bytesStored MiB | restic growth MiB | borg growth MiB | vmbkp peak RSS MiB | vmbkp plaintext peak RSS MiB | restic peak RSS MiB | borg peak RSS MiB |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const dash = (x, f) => (x === undefined ? '—' : f(x));
  for (const [title, k] of rows) {
    const v = s(vmbkp, k); const q = s(vmbkpPlain, k); const r = s(restic, k); const b = s(borg, k);
    const speedup = v && r ? r.seconds / v.seconds : undefined;
    p(`| ${title} | ${dash(v?.seconds, fmtS)} | ${dash(q?.seconds, fmtS)} | ${dash(r?.seconds, fmtS)} | ${dash(b?.seconds, fmtS)} | ${dash(speedup, fmtX)} | `
      + `${dash(v?.growthBytes, fmtMiB)} | ${dash(q?.growthBytes, fmtMiB)} | ${dash(v?.bytesStored, fmtMiB)} | ${dash(r?.growthBytes, fmtMiB)} | ${dash(b?.growthBytes, fmtMiB)} | `
      + `${dash(v ? v.maxRssKiB : undefined, fmtRss)} | ${dash(q ? q.maxRssKiB : undefined, fmtRss)} | ${dash(r ? r.maxRssKiB : undefined, fmtRss)} | ${dash(b ? b.maxRssKiB : undefined, fmtRss)} |`);
  }
  p('');
  if (vmbkp) {
    const rd = ['full', 'next', 'diff'].map((k) => s(vmbkp, k)).filter(Boolean)
      .map((x) => `${x.manifest?.mode ?? '?'} ${fmtMiB(x.bytesRead)} MiB`);
    if (rd.length) p(`vmbkp read (bytesRead): ${rd.join(', ')}; image ${fmtMiB(results.images.baseBytes)} MiB, changed extents ${fmtMiB(results.images.extentsBytes)} MiB.`);
  }
  p('Not run: ' + (ALL_TOOLS.filter((t) => !results.tools[t]).map((t) => `${t} (${results.skipped?.[t] ?? 'not selected'})`).join(', ') || 'none') + '.');
  p('');

  reportEncryption(p);
  reportS3(p);

  const L = results.limits;
  p('### Machine limits');
  p('');
  p(`- read: \`cat base.img > /dev/null\` (warm cache) ${fmtS(L.cat?.seconds)} s, ${L.cat ? (results.images.baseBytes / MiB / L.cat.seconds).toFixed(0) : 'n/a'} MiB/s of image`);
  p(`- copy: \`cp --sparse=always base.img copy.img\` ${fmtS(L.cp?.seconds)} s, ${L.cp ? (results.images.baseBytes / MiB / L.cp.seconds).toFixed(0) : 'n/a'} MiB/s of image`);
  const rn = s(vmbkp, 'restoreNewest'); const ro = s(vmbkp, 'restoreOldest');
  p(`- vmbkp restore newest ÷ cp --sparse: ${rn && L.cp ? fmtX(rn.seconds / L.cp.seconds) : 'n/a'}`);
  p(`- vmbkp restore oldest ÷ cp --sparse: ${ro && L.cp ? fmtX(ro.seconds / L.cp.seconds) : 'n/a'}`);
  const sr = s(vmbkp, 'serveRead'); const sc = s(vmbkp, 'serveCopy');
  if (sr) {
    p(`- vmbkp serve: ready in ${fmtS(sr.readySeconds)} s; nbdcopy to null: ${fmtS(sr.seconds)} s, ${(results.images.baseBytes / MiB / sr.seconds).toFixed(0)} MiB/s of image; `
      + `÷ cat: ${L.cat ? fmtX(sr.seconds / L.cat.seconds) : 'n/a'}; ÷ restore oldest: ${ro ? fmtX(sr.seconds / ro.seconds) : 'n/a'}`);
  }
  if (sc) p(`- vmbkp serve, nbdcopy to a file ÷ restore oldest: ${ro ? fmtX(sc.seconds / ro.seconds) : 'n/a'}; ÷ cp --sparse: ${L.cp ? fmtX(sc.seconds / L.cp.seconds) : 'n/a'}`);
  p('');

  p('### Targets');
  p('');
  for (const t of results.targets) p(`- ${t.status} ${t.name}: ${t.detail}`);
  p('');

  const bad = results.checks.filter((c) => !c.ok);
  p('### Restore checks');
  p('');
  if (!results.checks.length) p('- none ran');
  for (const c of results.checks) p(`- ${c.ok ? 'ok' : 'MISMATCH'}: ${c.tool} ${c.what} ${c.ok ? '=' : '≠'} SHA-256 of ${c.source}`);
  if (bad.length) p(`\n**${bad.length} restored image(s) differ from their source: the run failed.**`);
}

/** The steps compared in "Encryption": vmbkp's step, and restic's step that does the same work. */
const ENC_STEPS = [
  { key: 'full', title: 'full backup', restic: 'full' },
  { key: 'next', title: 'incr (next generation, CBT extents; restic re-reads)', restic: 'next' },
  { key: 'diff', title: 'diff (next generation, whole disk read; restic\'s next generation)', restic: 'next' },
  { key: 'restoreNewest', title: 'restore newest', restic: 'restoreNewest' },
  { key: 'restoreOldest', title: 'restore oldest', restic: 'restoreOldest' },
];

const median = (xs) => {
  if (!xs?.length) return null;
  const a = [...xs].sort((x, y) => x - y);
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
};

/**
 * Issue 14's figures, all from this run: encrypted ÷ plaintext vmbkp and restic ÷ encrypted
 * vmbkp per step, the cost of opening a repository, and the repositories' sizes. Into
 * results.encryption (and so into --json).
 */
function encryptionFigures() {
  const { vmbkp: enc, vmbkpPlain: plain, restic, borg } = results.tools;
  if (!enc || !plain) return;
  const s = (t, k) => t?.steps?.[k];
  const openEnc = median(enc.listSeconds);
  const openPlain = median(plain.listSeconds);
  const openCost = openEnc != null && openPlain != null ? openEnc - openPlain : null;
  const openCpuEnc = median(enc.listCpuSeconds);
  const openCpuPlain = median(plain.listCpuSeconds);
  const steps = ENC_STEPS.map(({ key, title, restic: rk }) => {
    const e = s(enc, key); const q = s(plain, key); const r = s(restic, rk);
    const x = {
      step: key, title, resticStep: rk,
      encSeconds: e?.seconds ?? null, plainSeconds: q?.seconds ?? null, resticSeconds: r?.seconds ?? null,
      encMaxRssKiB: e?.maxRssKiB ?? null, plainMaxRssKiB: q?.maxRssKiB ?? null,
      encCpuSeconds: e?.cpuSeconds ?? null, plainCpuSeconds: q?.cpuSeconds ?? null, resticCpuSeconds: r?.cpuSeconds ?? null,
    };
    x.encOverPlainCpu = x.encCpuSeconds != null && x.plainCpuSeconds ? x.encCpuSeconds / x.plainCpuSeconds : null;
    x.encOverPlain = e && q ? e.seconds / q.seconds : null;
    x.encLessOpenOverPlain = e && q && openCost != null ? (e.seconds - openCost) / q.seconds : null;
    x.resticOverEnc = e && r ? r.seconds / e.seconds : null;
    x.resticOverPlain = q && r ? r.seconds / q.seconds : null;
    return x;
  });
  const targets = [];
  for (const x of steps) {
    const within = x.encOverPlain == null ? null : x.encOverPlain <= ENC_OVER_PLAIN_MAX;
    targets.push({
      name: `${x.title}: encrypted ≤ ${ENC_OVER_PLAIN_MAX.toFixed(2)}× plaintext`, value: x.encOverPlain,
      status: within === null ? 'SKIP' : within ? 'PASS' : 'MISS',
      detail: x.encOverPlain == null ? 'n/a'
        : `${fmtX(x.encOverPlain)} (encrypted ${fmtS(x.encSeconds)} s, plaintext ${fmtS(x.plainSeconds)} s; less the open cost ${fmtX(x.encLessOpenOverPlain)})`,
    });
    const fast = x.resticOverEnc == null ? null : x.resticOverEnc >= RESTIC_OVER_ENC_MIN;
    targets.push({
      name: `${x.title}: encrypted vmbkp ≥ ${RESTIC_OVER_ENC_MIN}× faster than restic`, value: x.resticOverEnc,
      status: fast === null ? 'SKIP' : fast ? 'PASS' : 'MISS',
      detail: x.resticOverEnc == null ? 'n/a (restic not run)'
        : `${fmtX(x.resticOverEnc)} (restic ${fmtS(x.resticSeconds)} s, encrypted vmbkp ${fmtS(x.encSeconds)} s)`,
    });
  }
  const chunksStored = enc.chunksStored ?? null;
  const overhead = enc.repoBytes != null && plain.repoBytes != null ? enc.repoBytes - plain.repoBytes : null;
  const fileOverhead = enc.repoFileBytes != null && plain.repoFileBytes != null ? enc.repoFileBytes - plain.repoFileBytes : null;
  const growth = Object.fromEntries(['full', 'next', 'diff'].map((k) => [k, {
    enc: s(enc, k)?.growthBytes ?? null, plain: s(plain, k)?.growthBytes ?? null,
    encBytesStored: s(enc, k)?.bytesStored ?? null, plainBytesStored: s(plain, k)?.bytesStored ?? null,
    chunksStored: s(enc, k)?.chunksStored ?? null,
  }]));
  results.encryption = {
    bounds: { encOverPlainMax: ENC_OVER_PLAIN_MAX, resticOverEncMin: RESTIC_OVER_ENC_MIN },
    order: results.options.plaintextFirst ? 'plaintext first' : 'encrypted first',
    steps,
    open: {
      encListSeconds: enc.listSeconds ?? [], plainListSeconds: plain.listSeconds ?? [],
      encMedianSeconds: openEnc, plainMedianSeconds: openPlain, costSeconds: openCost,
      encListCpuSeconds: enc.listCpuSeconds ?? [], plainListCpuSeconds: plain.listCpuSeconds ?? [],
      costCpuSeconds: openCpuEnc != null && openCpuPlain != null ? openCpuEnc - openCpuPlain : null,
      encListMaxRssKiB: s(enc, 'list')?.maxRssKiB ?? null, plainListMaxRssKiB: s(plain, 'list')?.maxRssKiB ?? null,
      encInitSeconds: s(enc, 'init')?.seconds ?? null, plainInitSeconds: s(plain, 'init')?.seconds ?? null,
    },
    repo: {
      encBytes: enc.repoBytes ?? null, plainBytes: plain.repoBytes ?? null, overheadBytes: overhead,
      overheadRatio: overhead != null && plain.repoBytes ? overhead / plain.repoBytes : null,
      chunksStored, overheadBytesPerChunk: overhead != null && chunksStored ? overhead / chunksStored : null,
      encFileBytes: enc.repoFileBytes ?? null, plainFileBytes: plain.repoFileBytes ?? null,
      encFiles: enc.repoFiles ?? null, plainFiles: plain.repoFiles ?? null,
      fileOverheadBytes: fileOverhead,
      fileOverheadBytesPerChunk: fileOverhead != null && chunksStored ? fileOverhead / chunksStored : null,
      growth,
      resticBytes: restic?.repoBytes ?? null, borgBytes: borg?.repoBytes ?? null,
    },
    targets,
  };
}

function reportEncryption(p) {
  const E = results.encryption;
  if (!E) return;
  p('### Encryption');
  p('');
  p(`vmbkp on an encrypted repository (the default) against the same steps on a plaintext one (\`--encryption none\`), `
    + `${E.order}, and against restic (which always encrypts), all in this run. Bounds: encrypted ÷ plaintext ≤ ${ENC_OVER_PLAIN_MAX.toFixed(2)}×; `
    + `restic ÷ encrypted vmbkp ≥ ${RESTIC_OVER_ENC_MIN}×, both on wall time. "Less the open cost" takes the open cost below off the encrypted time. `
    + 'CPU s is user + system time (GNU time): less moved by other load on the machine than wall time, it shows what encryption costs in work.');
  p('');
  p('| step | encrypted s | plaintext s | encrypted ÷ plaintext | less the open cost | restic s | restic ÷ encrypted | restic ÷ plaintext | encrypted CPU s | plaintext CPU s | CPU encrypted ÷ plaintext | encrypted peak RSS MiB | plaintext peak RSS MiB |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of E.steps) {
    p(`| ${x.title} | ${fmtS(x.encSeconds)} | ${fmtS(x.plainSeconds)} | ${fmtX(x.encOverPlain)} | ${fmtX(x.encLessOpenOverPlain)} | `
      + `${fmtS(x.resticSeconds)} | ${fmtX(x.resticOverEnc)} | ${fmtX(x.resticOverPlain)} | `
      + `${fmtS(x.encCpuSeconds)} | ${fmtS(x.plainCpuSeconds)} | ${fmtX(x.encOverPlainCpu)} | ${fmtRss(x.encMaxRssKiB)} | ${fmtRss(x.plainMaxRssKiB)} |`);
  }
  p('');
  const o = E.open;
  p(`- Open cost: \`vmbkp list\` ×${o.encListSeconds.length} each, alternated: encrypted ${o.encListSeconds.map(fmtS).join(' / ')} s `
    + `(median ${fmtS(o.encMedianSeconds)} s, peak RSS ${fmtRss(o.encListMaxRssKiB)} MiB), plaintext ${o.plainListSeconds.map(fmtS).join(' / ')} s `
    + `(median ${fmtS(o.plainMedianSeconds)} s, peak RSS ${fmtRss(o.plainListMaxRssKiB)} MiB): **${fmtS(o.costSeconds)} s per command** `
    + `(scrypt at the default 64 MiB, key unwrap, sealed manifests); CPU (user + system) ${fmtS(o.costCpuSeconds)} s per command. `
    + `init: encrypted ${fmtS(o.encInitSeconds)} s, plaintext ${fmtS(o.plainInitSeconds)} s.`);
  const R = E.repo;
  const pct = (x) => (x == null ? 'n/a' : `${(x * 100).toFixed(2)} %`);
  p(`- Repository size after full + incr + diff (\`du -sb\`): encrypted ${fmtMiB(R.encBytes)} MiB (${R.encBytes} bytes), `
    + `plaintext ${fmtMiB(R.plainBytes)} MiB (${R.plainBytes} bytes): +${R.overheadBytes} bytes (+${pct(R.overheadRatio)}); `
    + `${R.chunksStored} chunks stored, ${R.overheadBytesPerChunk == null ? 'n/a' : R.overheadBytesPerChunk.toFixed(1)} bytes per chunk. `
    + `Files only (du counts directories too, and the encrypted repository's pack and set directories differ): `
    + `${R.encFiles} files, ${R.encFileBytes} bytes, against ${R.plainFiles} files, ${R.plainFileBytes} bytes: +${R.fileOverheadBytes} bytes, `
    + `${R.fileOverheadBytesPerChunk == null ? 'n/a' : R.fileOverheadBytesPerChunk.toFixed(1)} per chunk stored `
    + '(28 bytes of nonce and tag per blob, plus the sealed pack tables, index files, manifests, key and config). '
    + `restic ${fmtMiB(R.resticBytes)} MiB, borg ${fmtMiB(R.borgBytes)} MiB (unencrypted).`);
  const g = R.growth;
  p(`- Growth, encrypted / plaintext MiB: full ${fmtMiB(g.full.enc)} / ${fmtMiB(g.full.plain)}, incr ${fmtMiB(g.next.enc)} / ${fmtMiB(g.next.plain)}, `
    + `diff ${fmtMiB(g.diff.enc)} / ${fmtMiB(g.diff.plain)}.`);
  p('');
  for (const t of E.targets) p(`- ${t.status} ${t.name}: ${t.detail}`);
  p('');
}

/** The progress line's tail for a step on S3: retries, the server's CPU, the requests. */
function s3Extra(x) {
  const srv = x.server;
  const parts = [`, retries ${x.retries ?? 'n/a'}`];
  if (srv) {
    parts.push(`server CPU ${fmtS(srv.cpuSecondsTotal)} s (${Object.entries(srv.cpuSeconds).map(([k, v]) => `${k} ${fmtS(v)}`).join(', ')})`);
    const rq = srv.requests ?? {};
    const m = Object.entries(rq).map(([k, o]) => `${o.count} ${k}${o.bytes ? ` (mean ${fmtMiB(o.meanBytes)} MiB)` : ''}`);
    if (m.length) parts.push(m.join(', '));
  }
  return parts.join(', ');
}

/** The steps compared in "Object storage": the same step on the local encrypted repository and on S3. */
const S3_STEPS = [
  { key: 'full', title: 'full backup', bound: 'backup' },
  { key: 'next', title: 'incr (same changed extents)' },
  { key: 'restoreNewest', title: 'restore newest', bound: 'restore' },
];

/** Speed on RGW ÷ speed on the local directory per step, the server's CPU and requests, the bounds: into results.s3. */
function s3Figures() {
  const S = results.s3;
  if (!S || S.status !== 'ran') return;
  const { vmbkp: local, vmbkpS3: remote } = results.tools;
  const s = (t, k) => t?.steps?.[k];
  S.steps = S3_STEPS.map(({ key, title }) => {
    const l = s(local, key); const r = s(remote, key);
    const srv = r?.server;
    const cpuTotal = r?.cpuSeconds != null && srv ? r.cpuSeconds + srv.cpuSecondsTotal : null;
    return {
      step: key, title,
      localSeconds: l?.seconds ?? null, s3Seconds: r?.seconds ?? null,
      s3OverLocalSpeed: l && r ? l.seconds / r.seconds : null,
      localCpuSeconds: l?.cpuSeconds ?? null, s3CpuSeconds: r?.cpuSeconds ?? null,
      localMaxRssKiB: l?.maxRssKiB ?? null, s3MaxRssKiB: r?.maxRssKiB ?? null,
      serverCpuSeconds: srv?.cpuSeconds ?? null, serverCpuSecondsTotal: srv?.cpuSecondsTotal ?? null,
      /** vmbkp and the server together, against the 2 cores' capacity over the step (nproc × wall). */
      cpuSecondsTotal: cpuTotal, cpuShareOfMachine: cpuTotal != null && r ? cpuTotal / (results.machine.nproc * r.seconds) : null,
      serverCpuDuringLocalSeconds: l?.server?.cpuSecondsTotal ?? null,
      rgw: srv?.rgw ?? null, requests: srv?.requests ?? null,
      retries: r?.retries ?? null, retriesByCause: r?.retriesByCause ?? null,
      sha256ok: r?.sha256ok ?? null,
    };
  });
  S.targets = S3_STEPS.filter((x) => x.bound).map(({ key, bound }) => {
    const x = S.steps.find((y) => y.step === key);
    const v = x.s3OverLocalSpeed;
    return {
      name: `${bound} speed on RGW ≥ ${S3_OVER_LOCAL_MIN}× the local directory's`, value: v,
      status: v == null ? 'SKIP' : v >= S3_OVER_LOCAL_MIN ? 'PASS' : 'MISS',
      detail: v == null ? 'n/a' : `${fmtX(v)} (RGW ${fmtS(x.s3Seconds)} s, local ${fmtS(x.localSeconds)} s)`,
    };
  });
  S.retries = S.steps.reduce((n, x) => (x.retries == null ? n : n + x.retries), 0);
}

function reportS3(p) {
  const S = results.s3;
  if (!S) return;
  p('### Object storage (S3 on RGW, loopback)');
  p('');
  if (S.status !== 'ran') {
    p(`- skipped: ${S.reason}`);
    p('');
    return;
  }
  const srvInfo = S.server;
  p(`The encrypted repository (as \`vmbkp init\` makes it) in a bucket on Ceph's RADOS Gateway (${srvInfo.cephVersion ?? 'Ceph'}), `
    + `a private one-node cluster from scripts/s3.mjs on 127.0.0.1 (radosgw, one OSD on memstore of ${fmtMiB(srvInfo.osdBytes)} MiB, one monitor; `
    + `started in ${fmtS(srvInfo.startSeconds)} s), each step right after the same step on the local directory, from the same disk file and warm cache. `
    + `Speed ratio = local seconds ÷ RGW seconds (bound ≥ ${S3_OVER_LOCAL_MIN}×). Server CPU = utime + stime of radosgw, ceph-osd and ceph-mon `
    + `over the step (/proc/PID/stat): they share the ${results.machine.nproc} CPUs with vmbkp. "Busy" = vmbkp's and the server's CPU ÷ (CPUs × wall).`);
  p('');
  p('| step | local s | RGW s | RGW speed ÷ local | vmbkp CPU s local / RGW | server CPU s (radosgw / osd / mon) | busy | peak RSS MiB local / RGW | requests | retries |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  const pct = (x) => (x == null ? 'n/a' : `${Math.round(x * 100)} %`);
  for (const x of S.steps) {
    const c = x.serverCpuSeconds ?? {};
    const rq = Object.entries(x.requests ?? {}).map(([k, o]) => `${o.count} ${k}${o.bytes ? ` (${fmtMiB(o.bytes)} MiB)` : ''}`).join(', ') || 'n/a';
    p(`| ${x.title} | ${fmtS(x.localSeconds)} | ${fmtS(x.s3Seconds)} | ${fmtX(x.s3OverLocalSpeed)} | ${fmtS(x.localCpuSeconds)} / ${fmtS(x.s3CpuSeconds)} | `
      + `${fmtS(x.serverCpuSecondsTotal)} (${fmtS(c.radosgw)} / ${fmtS(c['ceph-osd'])} / ${fmtS(c['ceph-mon'])}) | ${pct(x.cpuShareOfMachine)} | `
      + `${fmtRss(x.localMaxRssKiB)} / ${fmtRss(x.s3MaxRssKiB)} | ${rq} | ${x.retries ?? 'n/a'} |`);
  }
  p('');
  const sizes = (o) => (o ? `${o.count}: median ${fmtMiB(o.medianBytes)} MiB, mean ${fmtMiB(o.meanBytes)} MiB, ${fmtMiB(o.minBytes)}–${fmtMiB(o.maxBytes)} MiB `
    + `(<1 MiB ${o.sizeBuckets.under1MiB}, 1–4 MiB ${o.sizeBuckets.from1to4MiB}, 4–8 MiB ${o.sizeBuckets.from4to8MiB}, ≥8 MiB ${o.sizeBuckets.atLeast8MiB}); `
    + `latency (RGW's, first byte in to last byte out) median ${(o.latencyMedianSeconds * 1000).toFixed(0)} ms, p90 ${(o.latencyP90Seconds * 1000).toFixed(0)} ms, max ${(o.latencyMaxSeconds * 1000).toFixed(0)} ms` : 'none');
  const full = S.steps.find((x) => x.step === 'full');
  const rest = S.steps.find((x) => x.step === 'restoreNewest');
  p(`- PUTs of the full backup: ${sizes(full?.requests?.PUT)}.`);
  p(`- GETs of the restore: ${sizes(rest?.requests?.GET)}.`);
  const idle = S.steps.map((x) => x.serverCpuDuringLocalSeconds).filter((x) => x != null);
  if (idle.length) p(`- The server idling during the local steps above used ${idle.map(fmtS).join(' / ')} CPU-s.`);
  p(`- Retries counted by vmbkp (\`storage.retries\` of backup and restore --json): ${S.retries}. Server stopped in ${fmtS(S.server.stopSeconds)} s.`);
  p('');
  for (const t of S.targets) p(`- ${t.status} ${t.name}: ${t.detail}`);
  p('');
}

function evaluateTargets() {
  const { vmbkp, restic } = results.tools;
  const s = (t, k) => t?.steps?.[k];
  const cp = results.limits.cp?.seconds;
  const add = (name, value, ok, detail) => results.targets.push({
    name, value, status: ok === null ? 'SKIP' : ok ? 'PASS' : 'MISS', detail,
  });
  const vsRestic = (name, k, factor) => {
    const v = s(vmbkp, k); const r = s(restic, k);
    if (!v || !r) { add(name, null, null, `n/a (${!v ? 'vmbkp' : 'restic'} not run)`); return; }
    const x = r.seconds / v.seconds;
    add(name, x, x >= factor, `${fmtX(x)} (vmbkp ${fmtS(v.seconds)} s, restic ${fmtS(r.seconds)} s; target ≥ ${factor}×)`);
  };
  const vsCp = (name, k, factor) => {
    const v = s(vmbkp, k);
    if (!v || !cp) { add(name, null, null, 'n/a'); return; }
    const x = v.seconds / cp;
    add(name, x, x <= factor, `${fmtX(x)} of cp --sparse (vmbkp ${fmtS(v.seconds)} s, cp ${fmtS(cp)} s; target ≤ ${factor}×)`);
  };
  if (results.images.ext4) {
    // Issue 16's bounds on real files: the repository no larger than restic's after each generation, the full ≥ 2× faster.
    vsRestic('ext4: full backup ≥ 2× faster than restic', 'full', 2);
    for (const [k, what] of [['full', 'the full backup'], ['next', 'the next generation']]) {
      const v = s(vmbkp, k); const r = s(restic, k);
      const name = `ext4: repository after ${what} ≤ restic's`;
      if (!v || !r) add(name, null, null, 'n/a');
      else add(name, v.repoBytesAfter, v.repoBytesAfter <= r.repoBytesAfter,
        `vmbkp ${fmtMiB(v.repoBytesAfter)} MiB, restic ${fmtMiB(r.repoBytesAfter)} MiB (du -sb)`);
    }
  }
  vsRestic('full backup ≥ 3× faster than restic', 'full', 3);
  vsRestic('incr ≥ 20× faster than restic\'s next generation', 'next', 20);
  {
    const v = s(vmbkp, 'next'); const r = s(restic, 'next');
    if (!v || !r) add('incr growth ≤ restic\'s growth', null, null, 'n/a');
    else add('incr growth ≤ restic\'s growth', v.growthBytes, v.growthBytes <= r.growthBytes,
      `vmbkp +${fmtMiB(v.growthBytes)} MiB, restic +${fmtMiB(r.growthBytes)} MiB (du -sb)`);
  }
  {
    const n = s(vmbkp, 'nbdFull'); const f = s(vmbkp, 'full');
    if (!n || !f) add('backup through nbdkit file ≤ 1.3× of file:', null, null, 'n/a');
    else {
      const x = n.seconds / f.seconds;
      add('backup through nbdkit file ≤ 1.3× of file:', x, x <= 1.3, `${fmtX(x)} (nbdkit file ${fmtS(n.seconds)} s reading ${fmtMiB(n.bytesRead)} MiB, file: ${fmtS(f.seconds)} s reading ${fmtMiB(f.bytesRead)} MiB)`);
    }
  }
  vsRestic('restore newest ≥ 2× faster than restic', 'restoreNewest', 2);
  vsCp('restore newest ≤ 1.5× cp --sparse', 'restoreNewest', 1.5);
  vsRestic('restore oldest ≥ 2× faster than restic', 'restoreOldest', 2);
  vsCp('restore oldest ≤ 1.5× cp --sparse', 'restoreOldest', 1.5);
  {
    const rss = [vmbkp, results.tools.vmbkpPlain].filter(Boolean).flatMap((t) => Object.values(t.steps).map((x) => x.maxRssKiB));
    if (!vmbkp || rss.some((x) => x == null)) add('vmbkp peak RSS ≤ 300 MiB', null, null, 'n/a');
    else {
      const peak = Math.max(...rss);
      add('vmbkp peak RSS ≤ 300 MiB', peak, peak <= 300 * 1024, `${fmtRss(peak)} MiB (largest of every vmbkp command, encrypted and plaintext)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  // `--files`: the file-level restore benchmark instead (bench/files.mjs, its own options).
  if (process.argv.includes('--files')) {
    const child = spawn(process.execPath, [path.join(here, 'files.mjs'), ...process.argv.slice(2).filter((a) => a !== '--files')], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }
  // `--scale`: the repository-size benchmark instead (bench/scale.mjs, its own options).
  if (process.argv.includes('--scale')) {
    const child = spawn(process.execPath, [path.join(here, 'scale.mjs'), ...process.argv.slice(2).filter((a) => a !== '--scale')], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }
  // `--sparse`: the sparse-disk benchmark instead (bench/sparse.mjs, its own options).
  if (process.argv.includes('--sparse')) {
    const child = spawn(process.execPath, [path.join(here, 'sparse.mjs'), ...process.argv.slice(2).filter((a) => a !== '--sparse')], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }
  const opt = parseArgs(process.argv.slice(2));
  results.options = { size: opt.size, workload: opt.workload, dir: opt.dir, keep: opt.keep, json: opt.json, tools: opt.tools, plaintextFirst: opt.plaintextFirst, s3: opt.s3 };
  const d = {
    keep: opt.keep,
    images: path.join(opt.dir, 'images'),
    work: path.join(opt.dir, 'work'),
    repos: path.join(opt.dir, 'repos'),
    restore: path.join(opt.dir, 'restore'),
    caches: path.join(opt.dir, 'caches'),
  };
  d.disk = path.join(d.work, 'disk.img');
  d.passwordFile = path.join(d.caches, 'vmbkp-password');
  const present = { vmbkp: true, restic: !!onPath('restic'), borg: !!onPath('borg') };
  results.skipped = {};
  for (const t of ALL_TOOLS) {
    if (!opt.tools.includes(t)) results.skipped[t] = 'not selected';
    else if (!present[t]) results.skipped[t] = 'not installed';
  }
  const tools = Object.fromEntries(ALL_TOOLS.map((t) => [t, !results.skipped[t]]));
  if (!fs.existsSync(generator)) throw new BenchError(`image generator not found: ${generator}`);

  // Stale repositories would make init fail; images are remade every run.
  for (const x of [d.images, d.work, d.repos, d.restore, d.caches]) fs.rmSync(x, { recursive: true, force: true });
  for (const x of [d.images, d.work, d.repos, d.restore, d.caches]) fs.mkdirSync(x, { recursive: true });
  results.machine = machineInfo(tools);
  const m = results.machine;
  log(`${m.nproc} CPUs (${m.cpu}), node ${m.node}, ${m.restic ?? 'no restic'}, ${m.borg ?? 'no borg'}; work dir ${opt.dir}`);
  if (!hasGnuTime) log(`${GNU_TIME} not found (Debian package "time"): peak RSS will be n/a`);
  for (const [t, why] of Object.entries(results.skipped)) log(`${t}: skipped (${why})`);

  // 1. Images.
  const img = {
    base: path.join(d.images, 'base.img'),
    gen1: path.join(d.images, 'gen1.img'),
    extents: path.join(d.images, 'gen1.json'),
  };
  let r;
  if (opt.workload === 'ext4') {
    log(`making the ${opt.size} ext4 image of real files and its next generation (bench/ext4-image.mjs)`);
    r = await run('ext4 images', process.execPath, [ext4Generator, '--dir', d.images, '--size', opt.size]);
    results.images.makeSeconds = r.seconds;
    results.images.mutateSeconds = 0;
    results.images.ext4 = JSON.parse(r.stdout);
  } else {
    log(`making ${opt.size} base image and its next generation (${CHANGE_PERCENT} % changed)`);
    r = await run('make base.img', process.execPath, [generator, 'make', '--out', img.base, '--size', opt.size, '--seed', '1']);
    results.images.makeSeconds = r.seconds;
    r = await run('mutate gen1.img', process.execPath, [generator, 'mutate', '--in', img.base, '--out', img.gen1,
      '--change', String(CHANGE_PERCENT), '--seed', '2', '--extents', img.extents]);
    results.images.mutateSeconds = r.seconds;
  }
  const st = fs.statSync(img.base);
  log(`images made: base ${fmtS(results.images.makeSeconds)} s (${(st.size / MiB / results.images.makeSeconds).toFixed(0)} MiB/s of image), next generation ${fmtS(r.seconds)} s`);
  const extents = JSON.parse(fs.readFileSync(img.extents, 'utf8'));
  Object.assign(results.images, {
    baseBytes: st.size,
    baseAllocated: st.blocks * 512,
    gen1Allocated: fs.statSync(img.gen1).blocks * 512,
    extentsCount: extents.length,
    extentsBytes: extents.reduce((n, e) => n + e.length, 0),
  });
  log('hashing the images');
  img.sha = { base: sha256File(img.base), gen1: sha256File(img.gen1) };
  results.images.sha256 = img.sha;
  syncDisks();
  warm(img.base); warm(img.gen1);

  // 2. Machine limits.
  r = await run('cat base.img', 'cat', [img.base], { stdoutNull: true });
  results.limits.cat = step(r, { mibPerSecond: st.size / MiB / r.seconds });
  progress('limits', 'cat base.img > /dev/null', r);
  const copy = path.join(d.work, 'copy.img');
  syncDisks();
  r = await run('cp --sparse', 'cp', ['--sparse=always', img.base, copy]);
  results.limits.cp = step(r, { mibPerSecond: st.size / MiB / r.seconds });
  progress('limits', 'cp --sparse=always base.img copy.img', r);
  fs.rmSync(copy, { force: true });
  syncDisks();

  // 3-5. The tools, one after the other on the same path; the S3 server runs during vmbkp's steps only.
  if (tools.vmbkp) {
    let server = null;
    const missing = opt.s3 ? cephMissing() : null;
    if (!opt.s3) results.s3 = { status: 'skipped', reason: '--no-s3' };
    else if (missing) {
      results.s3 = { status: 'skipped', reason: missing };
      log(`s3: skipped: ${missing}`);
    } else {
      const osdBytes = Math.max(S3_MIN_OSD_BYTES, 2 * st.size);
      let cephVersion = null;
      try { cephVersion = /ceph version (\S+)/.exec(sh('ceph', ['--version']))?.[1] ?? null; } catch { /* unknown */ }
      server = await startS3Server(osdBytes);
      results.s3 = { status: 'ran', server: { endpoint: server.info.endpoint, bucket: S3_BUCKET, osdBytes, startSeconds: server.startSeconds, cephVersion: cephVersion && `Ceph ${cephVersion}` } };
      log(`s3: RGW at ${server.info.endpoint} (OSD on memstore, ${fmtMiB(osdBytes)} MiB), ready in ${fmtS(server.startSeconds)} s`);
    }
    try {
      await benchVmbkp(d, img, opt.plaintextFirst, server);
    } finally {
      const stopped = await stopS3Server();
      if (stopped && results.s3?.server) results.s3.server.stopSeconds = stopped.seconds;
    }
  } else results.s3 = { status: 'skipped', reason: 'vmbkp not run' };
  if (tools.restic) await benchRestic(d, img);
  if (tools.borg) await benchBorg(d, img);

  evaluateTargets();
  encryptionFigures();
  s3Figures();
  const out = [];
  report(out);
  process.stdout.write(out.join('\n') + '\n');
  results.finished = new Date().toISOString();
  if (opt.json) {
    fs.mkdirSync(path.dirname(opt.json), { recursive: true });
    fs.writeFileSync(opt.json, JSON.stringify(results, null, 2) + '\n');
    log(`wrote ${opt.json}`);
  }

  const failed = results.checks.some((c) => !c.ok);
  if (failed) {
    log(`restore checksum mismatch: work files kept in ${opt.dir}`);
    return 1;
  }
  if (!opt.keep) {
    for (const x of [d.images, d.work, d.repos, d.restore, d.caches]) fs.rmSync(x, { recursive: true, force: true });
    try { fs.rmdirSync(opt.dir); } catch { /* not empty: not only ours */ }
  } else log(`work files kept in ${opt.dir}`);
  return 0;
}

// A signal stops the command running now and the S3 server, and leaves the work files to look at.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping`);
    for (const child of running) { try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ } }
    stopS3Server().finally(() => {
      fs.rmSync(tmpTimeFile, { force: true });
      if (results.options?.dir) log(`work files kept in ${results.options.dir}`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  });
}

main().then((code) => {
  fs.rmSync(tmpTimeFile, { force: true });
  process.exitCode = code;
}, async (err) => {
  fs.rmSync(tmpTimeFile, { force: true });
  if (interrupted) return; // the signal handler ends the run
  await stopS3Server();
  log(err instanceof BenchError ? err.message : `failed: ${err?.stack ?? err}`);
  const dir = results.options?.dir;
  if (dir) log(`work files kept in ${dir}`);
  if (results.options?.json) {
    // The figures gathered so far, with the error, for whoever wants to see how far it got.
    try {
      results.error = err?.message ?? String(err);
      fs.writeFileSync(results.options.json, JSON.stringify(results, null, 2) + '\n');
      log(`wrote partial figures to ${results.options.json}`);
    } catch { /* nothing more to do */ }
  }
  process.exitCode = 1;
});
