#!/usr/bin/env node
// npm run --silent s3 [-- --size BYTES]: a real S3 server for tests and benchmarks. Starts a
// private single-node Ceph cluster in a fresh temporary directory (one monitor, one OSD on
// memstore, radosgw on 127.0.0.1), prints ONE JSON line describing it on stdout, then serves
// line commands on stdin (stop-rgw, start-rgw, create-user NAME) until SIGTERM, SIGINT or
// the end of stdin, and then stops what it started and removes the directory.
// Diagnostics go to stderr; see docs/s3-server.md.
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

const GiB = 1024 ** 3;
const REGION = 'us-east-1';
const STEP_TIMEOUT_MS = 60_000;

function parseArgs(argv) {
  let size = 4 * GiB;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--size' && /^\d+$/.test(argv[i + 1] ?? '')) size = Number(argv[++i]);
    else {
      process.stderr.write(`s3: usage: node scripts/s3.mjs [--size BYTES] (got ${JSON.stringify(argv[i])})\n`);
      process.exit(2);
    }
  }
  return { size };
}

const { size } = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(path.join(os.tmpdir(), 'vmbkp-s3-'));
const conf = path.join(dir, 'ceph.conf');
/** name → the running daemon's child process; the watchdog's pid file mirrors it. */
const daemons = new Map();
/** Tools running to completion (ceph, radosgw-admin …), killed if we stop meanwhile. */
const tools = new Set();
let watchdog;
let rgwPort;
let stopping = false;
let ready = false;

function fail(message, log) {
  if (stopping) return; // asked to stop: whatever failed meanwhile was stopped by us
  process.stderr.write(`s3: ${message}${log ? `; log: ${log}` : ''}\n`);
  if (log) {
    try { process.stderr.write(`${readFileSync(log, 'utf8').split('\n').slice(-40).join('\n')}\n`); } catch { /* no log yet */ }
  }
  void shutdown(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Every setting that keeps this cluster private, small and quick; docs/s3-server.md says why.
function cephConf(fsid, monPort) {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
keyring = ${dir}/keyring
run dir = ${dir}
admin socket = ${dir}/$name.asok
log file = ${dir}/$name.log
mon cluster log file = ${dir}/cluster.log
crash dir = ${dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
[mon]
mon data = ${dir}/$name
paxos propose interval = 0.05
[osd]
osd data = ${dir}/$name
osd objectstore = memstore
memstore device bytes = ${size}
[client]
rgw data = ${dir}/$name
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw enable lc threads = false
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
`;
}

/** Runs a Ceph tool to completion; rejects with its stderr's last line and the log to show. */
function tool(cmd, args, log = 'client.admin.log') {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, ['-c', conf, ...args], { cwd: dir, timeout: STEP_TIMEOUT_MS }, (err, stdout, stderr) => {
      tools.delete(child);
      const why = err?.killed ? `timed out after ${STEP_TIMEOUT_MS / 1000} s` : (stderr || err?.message || '').trim().split('\n').pop();
      if (err) reject(Object.assign(new Error(`${cmd} ${args.slice(0, 2).join(' ')} failed: ${why}`), { log: path.join(dir, log) }));
      else resolve(stdout);
    });
    tools.add(child);
  });
}

/**
 * Starts a daemon in the foreground, in its own process group (a terminal's ^C reaches
 * only this script, which stops the daemons in order), output into the temp dir.
 */
function daemon(key, cmd, args) {
  const out = openSync(path.join(dir, `${key}.out`), 'a');
  const child = spawn(cmd, ['-f', '-c', conf, ...args], { cwd: dir, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  daemons.set(key, child);
  writePids();
  child.once('exit', (code, signal) => {
    if (daemons.get(key) === child) daemons.delete(key);
    writePids();
    if (!stopping && !child.expectedExit) {
      const log = path.join(dir, `${key === 'rgw' ? 'client.rgw' : key}.log`);
      if (key === 'rgw') process.stderr.write(`s3: radosgw exited unexpectedly (${signal ?? code}); log: ${log}\n`);
      else fail(`${cmd} exited unexpectedly (${signal ?? code})`, log);
    }
  });
  return child;
}

/**
 * If this script dies without cleaning up (SIGKILL), a detached shell notices the end of
 * its stdin pipe, kills the daemons listed in the pid file and removes the directory.
 */
function startWatchdog() {
  writePids();
  const script = 'while read -r _; do :; done; kill -KILL $(cat "$0") 2>/dev/null; rm -rf "$1"';
  watchdog = spawn('sh', ['-c', script, path.join(dir, 'pids'), dir], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  watchdog.unref();
  watchdog.stdin.unref?.();
}

function writePids() {
  if (stopping) return;
  writeFileSync(path.join(dir, 'pids'), [...daemons.values()].map((c) => c.pid).join(' '));
}

/** Resolves when anything answers HTTP on the port (any status: RGW is serving). */
function httpAnswers(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1000 }, (res) => { res.resume(); resolve(true); });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

async function startRgw() {
  const child = daemon('rgw', 'radosgw', ['-n', 'client.rgw']);
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!(await httpAnswers(rgwPort))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      const why = child.exitCode !== null || child.signalCode !== null ? 'exited' : `did not answer on 127.0.0.1:${rgwPort} within ${STEP_TIMEOUT_MS / 1000} s`;
      throw Object.assign(new Error(`radosgw ${why}`), { log: path.join(dir, 'client.rgw.log') });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child.pid;
}

/**
 * Kills radosgw as a crash would, then fences it as Ceph fences a dead client: its watches on
 * RGW's control objects would otherwise hold every bucket create or policy change of the next
 * radosgw for up to 30 s (osd client watch timeout), waiting for acks from a dead process.
 */
async function stopRgw() {
  const child = daemons.get('rgw');
  if (!child) return;
  child.expectedExit = true;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
  const watchers = await tool('rados', ['-p', 'default.rgw.control', 'listwatchers', 'notify.0']);
  const addrs = new Set([...watchers.matchAll(/watcher=(\S+)/g)].map((m) => m[1]));
  for (const addr of addrs) await tool('ceph', ['osd', 'blocklist', 'add', addr]);
}

/** radosgw-admin generates the keys, so no secret ever appears in a process's arguments. */
async function createUser(name) {
  const out = await tool('radosgw-admin', ['user', 'create', '--uid', name, '--display-name', name]);
  const key = JSON.parse(out).keys.find((k) => k.user === name);
  return { user: name, accessKeyId: key.access_key, secretAccessKey: key.secret_key };
}

async function start() {
  const fsid = randomUUID();
  const monPort = await freePort();
  rgwPort = await freePort();
  writeFileSync(conf, cephConf(fsid, monPort));
  startWatchdog();
  await new Promise((resolve, reject) => execFile('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, path.join(dir, 'monmap')], (e) => (e ? reject(e) : resolve())));
  await tool('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')], 'mon.a.log');
  daemon('mon.a', 'ceph-mon', ['-i', 'a']);
  const osdUuid = randomUUID();
  const id = (await tool('ceph', ['--connect-timeout', '30', 'osd', 'new', osdUuid])).trim();
  mkdirSync(path.join(dir, `osd.${id}`));
  await tool('ceph-osd', ['--mkfs', '-i', id, '--osd-uuid', osdUuid], `osd.${id}.log`);
  daemon(`osd.${id}`, 'ceph-osd', ['-i', id]);
  // radosgw-admin waits for the OSD and makes RGW's zone and pools before radosgw starts,
  // so the two never race to create the default zone.
  const user = await createUser('vmbkp');
  const rgwPid = await startRgw();
  process.stdout.write(`${JSON.stringify({
    endpoint: `http://127.0.0.1:${rgwPort}`, region: REGION, accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey,
    forcePathStyle: true, pid: process.pid, rgwPid, dir, cephConf: conf,
  })}\n`);
  ready = true;
}

async function command(line) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === 'stop-rgw') {
    await stopRgw();
    return { rgw: 'stopped' };
  }
  if (cmd === 'start-rgw') {
    if (daemons.has('rgw')) return { error: 'radosgw is already running' };
    return { rgw: 'started', rgwPid: await startRgw() };
  }
  if (cmd === 'create-user') {
    if (args.length !== 1 || !/^[A-Za-z0-9_.-]+$/.test(args[0])) return { error: 'usage: create-user NAME (letters, digits, _ . -)' };
    return createUser(args[0]);
  }
  return { error: `unknown command ${JSON.stringify(cmd ?? '')}: stop-rgw, start-rgw, create-user NAME` };
}

/** Answers stdin's line commands in order, once the cluster is up; the end of stdin stops all. */
function serveCommands(started) {
  let queue = started;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => command(line)).catch((e) => ({ error: e.message }))
      .then((answer) => { if (!stopping) process.stdout.write(`${JSON.stringify(answer)}\n`); });
  });
  lines.on('close', () => void shutdown(0, 'stdin ended'));
}

/** Waits for a child to exit; SIGKILL after `ms`. */
function reap(child, signal, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill(signal);
  });
}

async function shutdown(code, why) {
  if (stopping) return;
  stopping = true;
  if (why && !ready) process.stderr.write(`s3: ${why} before the server was ready; stopping\n`);
  // The OSD gets SIGKILL: on a clean stop memstore would first write all its data into the
  // directory we are about to remove.
  const rgw = daemons.get('rgw');
  if (rgw) await reap(rgw, 'SIGTERM');
  for (const child of tools) child.kill('SIGKILL');
  await Promise.all([...daemons].map(([key, child]) => reap(child, key.startsWith('osd.') ? 'SIGKILL' : 'SIGTERM')));
  if (watchdog?.exitCode === null) watchdog.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

process.on('SIGTERM', () => void shutdown(0, 'SIGTERM'));
process.on('SIGINT', () => void shutdown(0, 'SIGINT'));
const started = start();
started.catch((e) => fail(e.message, e.log ?? path.join(dir, 'mon.a.log')));
serveCommands(started);
