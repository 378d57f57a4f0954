/**
 * The helper-process module with real small helpers (`node -e` scripts on a Unix socket):
 * ready only once the socket accepts, an early exit fails with its status and a bounded
 * stderr tail, stop waits for the exit and escalates to SIGKILL, nothing is left running.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InputError, IoError } from '../src/errors.js';
import { HelperExitedError, HelperProcess, STDERR_TAIL_CHARS, canConnect } from '../src/sources/helper-process.js';
import { tempDir } from './helpers.js';

/** A node script as a helper: `script` runs with SOCKET and MARK (a file it may write) in its environment. */
function nodeHelper(dir: string, script: string, extra: { readyTimeoutMs?: number; stopGraceMs?: number } = {}) {
  const socket = path.join(dir, 'helper.sock');
  return {
    socket,
    mark: path.join(dir, 'mark'),
    start: () => HelperProcess.start({
      command: process.execPath, args: ['-e', script], socket, what: 'test helper',
      env: { ...process.env, SOCKET: socket, MARK: path.join(dir, 'mark') },
      notInstalled: 'not installed', ...extra,
    }),
  };
}

/** Listens on $SOCKET after `delayMs`, and writes $MARK once listening. */
const LISTEN_LATER = (delayMs: number) => `
const net = require('node:net'), fs = require('node:fs');
setTimeout(() => net.createServer((c) => c.destroy()).listen(process.env.SOCKET, () => fs.writeFileSync(process.env.MARK, 'listening')), ${delayMs});`;

/** Pids of running processes whose command line holds `token`. */
async function processesNaming(token: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of (await fs.readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(token)) out.push(Number(pid));
  }
  return out;
}

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    await fn(dir);
  } finally {
    await cleanup();
  }
}

describe('helper process', () => {
  it('start returns once the socket accepts a connection, not before', () => withDir(async (dir) => {
    const h = nodeHelper(dir, LISTEN_LATER(300));
    const helper = await h.start();
    try {
      // The helper listens 300 ms after it starts: a start that returned early finds no socket. (The helper's
      // own mark is written by its listen callback, which may run after the socket already accepts.)
      assert.equal(await canConnect(h.socket), true, 'the socket accepts when start returns');
    } finally {
      await helper.stop();
    }
  }));

  it('a helper that exits first fails the start with its exit code and what it wrote to stderr', () => withDir(async (dir) => {
    const h = nodeHelper(dir, "process.stderr.write('opening disk\\nfatal: cannot open disk 2000\\n'); process.exit(3)");
    const err = await h.start().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof HelperExitedError, String(err));
    assert.ok(err instanceof IoError);
    assert.deepEqual(err.exit, { code: 3, signal: null });
    assert.equal(err.message, 'test helper stopped before it served (exit code 3): opening disk | fatal: cannot open disk 2000');
    assert.equal(err.stderr, 'opening disk\nfatal: cannot open disk 2000\n');
  }));

  it('keeps only a bounded tail of stderr, cut at a line start', () => withDir(async (dir) => {
    const h = nodeHelper(dir, "for (let i = 0; i < 5000; i++) process.stderr.write('noise line ' + i + '\\n'); process.stderr.write('the last word\\n'); process.exitCode = 1");
    const err = await h.start().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof HelperExitedError, String(err));
    assert.ok(err.stderr.length <= STDERR_TAIL_CHARS, `${err.stderr.length} characters kept`);
    assert.ok(err.stderr.length > STDERR_TAIL_CHARS / 2, 'most of the tail is kept');
    assert.match(err.stderr, /^noise line \d+\n/, 'starts at a whole line');
    assert.match(err.stderr, /noise line 4999\nthe last word\n$/);
    assert.doesNotMatch(err.stderr, /noise line 0\n/);
  }));

  it('a command that is not installed is an InputError with the caller\'s hint', async () => {
    const err = await HelperProcess.start({ command: 'vmbkp-test-no-such-helper', args: [], socket: '/nonexistent/sock', what: 'x', notInstalled: 'install it' })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof InputError, String(err));
    assert.equal(err.message, 'install it');
  });

  it('a helper that never serves is stopped when the start gives up', () => withDir(async (dir) => {
    const token = `never-serves-${randomUUID()}`;
    const h = nodeHelper(dir, `/* ${token} */ setInterval(() => {}, 1000)`, { readyTimeoutMs: 500 });
    const err = await h.start().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof IoError, String(err));
    assert.match(err.message, /^test helper did not start serving within \d+ s$/);
    assert.deepEqual(await processesNaming(token), [], 'the helper was stopped and reaped');
  }));

  it('stop waits until the helper has exited (it cleans up after SIGTERM)', () => withDir(async (dir) => {
    const h = nodeHelper(dir, `
      const net = require('node:net'), fs = require('node:fs');
      const server = net.createServer((c) => c.destroy()).listen(process.env.SOCKET);
      process.on('SIGTERM', () => { server.close(); setTimeout(() => { fs.writeFileSync(process.env.MARK, 'cleaned up'); process.exit(0); }, 300); });`);
    const helper = await h.start();
    const pid = helper.pid!;
    const exit = await helper.stop();
    assert.ok(existsSync(h.mark), 'the helper finished its clean-up before stop returned');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(pidGone(pid));
    assert.deepEqual(await helper.stop(), exit, 'stopping again is harmless');
  }));

  it('stop escalates to SIGKILL when the helper ignores SIGTERM', () => withDir(async (dir) => {
    const h = nodeHelper(dir, `
      process.on('SIGTERM', () => {});
      require('node:net').createServer((c) => c.destroy()).listen(process.env.SOCKET);`, { stopGraceMs: 300 });
    const helper = await h.start();
    const pid = helper.pid!;
    const exit = await helper.stop();
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    assert.ok(pidGone(pid));
  }));
});
