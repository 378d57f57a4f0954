/**
 * What the CLI says besides its result: --quiet leaves only errors (and the result under
 * --json, or of a command that exists to show something); --verbose adds the steps; off a
 * terminal every log line starts with its ISO time, on a terminal (script(1)) none does.
 * The warning used throughout: a repository password given for a plaintext repository.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bytes } from '../src/cli/format.js';
import { logLine, stampsTime } from '../src/cli/log.js';
import { FileSource } from '../src/sources/file.js';
import { CLI, REPO_PASSWORD_FILE, makeImage, run, tempDir, vmbkp } from './helpers.js';

const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) vmbkp: /;
/** The default: as a user's shell or cron runs it, not as the other tests do (never). */
const AUTO = { VMBKP_LOG_TIME: 'auto' };

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs the CLI on a pseudo-terminal (stdin, stdout, stderr); returns what the terminal showed. */
async function onTerminal(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; screen: string }> {
  const cmd = [process.execPath, CLI, ...args].map(shellQuote).join(' ');
  const r = await run('script', ['-qefc', cmd, '/dev/null'], { env: { TERM: 'xterm', CI: '', ...env } });
  return { code: r.code, screen: r.stdout };
}

function lines(s: string): string[] {
  return s.split('\n').filter(Boolean);
}

describe('log output', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let image: string;
  /** A backup that warns: the password given is for no key of this plaintext repository. */
  let backup: string[];
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'plain');
    image = path.join(dir, 'disk.img');
    await makeImage(image, '8M', 3);
    assert.equal((await vmbkp(['init', '--repo', repo, '--encryption', 'none'])).code, 0);
    backup = ['backup', '--repo', repo, '--repo-password-file', REPO_PASSWORD_FILE, '--set', 'vm', `sda=file:${image}`];
  });
  after(() => cleanup());

  it('off a terminal, a warning starts with the time it was written', async () => {
    const t0 = Date.now();
    const r = await vmbkp(backup, { env: AUTO });
    const t1 = Date.now();
    assert.equal(r.code, 0, r.stderr);
    const warning = lines(r.stderr);
    assert.equal(warning.length, 1, r.stderr);
    const m = STAMP.exec(warning[0]!);
    assert.ok(m, `no time on: ${warning[0]}`);
    const at = Date.parse(m[1]!);
    assert.ok(at >= t0 - 1000 && at <= t1 + 1000, `${m[1]} is not the time of the run`);
    assert.match(warning[0]!, / vmbkp: warning: repository \S+plain is not encrypted, yet a repository password was given/);
    assert.match(r.stdout, /^set vm generation \d+ \(auto\)/);
  });

  it('a journal stamps lines itself, and VMBKP_LOG_TIME overrides the choice', async () => {
    const journal = await vmbkp(backup, { env: { ...AUTO, JOURNAL_STREAM: '8:12345' } });
    assert.match(journal.stderr, /^vmbkp: warning: repository /);
    const never = await vmbkp(backup, { env: { VMBKP_LOG_TIME: 'never' } });
    assert.match(never.stderr, /^vmbkp: warning: repository /);
    const always = await onTerminal(backup, { VMBKP_LOG_TIME: 'always' });
    assert.equal(always.code, 0, always.screen);
    assert.match(always.screen, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z vmbkp: warning: repository /);
  });

  it('on a terminal, log lines carry no time', async () => {
    const r = await onTerminal(backup, AUTO);
    assert.equal(r.code, 0, r.screen);
    assert.match(r.screen, /(^|[\r\n])vmbkp: warning: repository \S+plain is not encrypted/);
    assert.doesNotMatch(r.screen, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  });

  it('--quiet: nothing but errors; the result under --json; what a command exists to show', async () => {
    const q = await vmbkp([...backup, '--quiet'], { env: AUTO });
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stderr, '');
    assert.equal(q.stdout, '');
    // Before the command, as a global option, alike.
    const before = await vmbkp(['-q', ...backup], { env: AUTO });
    assert.equal(before.code, 0, before.stderr);
    assert.equal(before.stderr + before.stdout, '');
    const json = await vmbkp([...backup, '--quiet', '--json'], { env: AUTO });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, '');
    assert.equal((JSON.parse(json.stdout) as { set: string }).set, 'vm');
    const failed = await vmbkp(['backup', '--quiet', '--repo', repo, '--set', 'vm', `sda=file:${path.join(dir, 'missing.img')}`], { env: AUTO });
    assert.equal(failed.code, 2);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /^vmbkp: error: opening disk file \S+missing\.img failed/);
    const list = await vmbkp(['list', '--quiet', '--repo', repo]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^set\s+gen\s+started/);
    // A dry run's report is what was asked for.
    const dry = await vmbkp(['prune', '--quiet', '--repo', repo, '--set', 'vm', '--keep-last', '1', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run: would remove \d+ generations; nothing was changed/);
  });

  it('--verbose: the steps, with their details; the result as always', async () => {
    const v = await vmbkp([...backup, '--verbose'], { env: AUTO });
    assert.equal(v.code, 0, v.stderr);
    const text = lines(v.stderr).map((l) => {
      assert.match(l, STAMP);
      return l.replace(STAMP, '');
    });
    assert.ok(text.some((l) => l.startsWith('warning: repository ')), v.stderr);
    assert.ok(text.includes(`opened repository ${repo} (plaintext, chunk size 256 KiB)`), v.stderr);
    assert.ok(text.some((l) => /^disk sda: (full|diff|incr) backup of 8\.00 MiB/.test(l)), v.stderr);
    // A file: disk is read where it holds data (SEEK_DATA): the image's allocated bytes, not its 8 MiB.
    const src = await FileSource.open(image);
    const allocated = (await src.allocated(0, src.size)).reduce((n, e) => n + e.length, 0);
    await src.close();
    assert.ok(allocated < 8 * 1024 * 1024);
    assert.ok(text.some((l) => l.startsWith(`disk sda: ${bytes(allocated)} read, `) && / stored in /.test(l)), v.stderr);
    assert.match(v.stdout, /^set vm generation \d+ \(auto\)/);
    const plain = await vmbkp(backup, { env: AUTO });
    assert.doesNotMatch(plain.stderr, /opened repository|disk sda:/);
  });

  it('--quiet and --verbose exclude each other', async () => {
    const r = await vmbkp(['list', '--repo', repo, '--quiet', '--verbose']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'vmbkp: error: --quiet and --verbose exclude each other\n');
  });

  it('the choice of stamp and the line format', () => {
    assert.equal(stampsTime({}, false), true);
    assert.equal(stampsTime({}, true), false);
    assert.equal(stampsTime({ JOURNAL_STREAM: '1:2' }, false), false);
    assert.equal(stampsTime({ VMBKP_LOG_TIME: 'always' }, true), true);
    assert.equal(stampsTime({ VMBKP_LOG_TIME: 'never' }, false), false);
    assert.equal(logLine('warning: x', new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6))), '2026-01-02T03:04:05.006Z vmbkp: warning: x\n');
    assert.equal(logLine('warning: x', undefined), 'vmbkp: warning: x\n');
  });
});
