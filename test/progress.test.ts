/**
 * On a terminal backup and restore show progress (bytes, rate, ETA); under --json or
 * without a terminal only the result is printed. The terminal is a real pseudo-terminal
 * from script(1).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, makeImage, run, tempDir, vmbkp } from './helpers.js';

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs the CLI with a pseudo-terminal as stdin, stdout and stderr; returns what the terminal showed. */
async function onTerminal(args: string[]): Promise<{ code: number | null; screen: string }> {
  const cmd = [process.execPath, CLI, ...args].map(shellQuote).join(' ');
  // CI set to empty: progress is off whenever CI is set, as on a build server.
  const r = await run('script', ['-qefc', cmd, '/dev/null'], { env: { TERM: 'xterm', CI: '' } });
  return { code: r.code, screen: r.stdout };
}

describe('progress', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let image: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    image = path.join(dir, 'disk.img');
    await makeImage(image, '64M', 5);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  });
  after(() => cleanup());

  it('a terminal shows bytes, rate and ETA for backup and restore', async () => {
    const b = await onTerminal(['backup', '--repo', repo, '--set', 'vm', `sda=file:${image}`]);
    assert.equal(b.code, 0, b.screen);
    assert.match(b.screen, /sda \(full\) \[[=-]*\] \d+% \| [\d.]+ \w+ \/ 64\.0 MiB \| [\d.]+ \w+\/s \| ETA /);
    assert.match(b.screen, /set vm generation 1 \(auto\)/);
    const r = await onTerminal(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `file:${path.join(dir, 'r.img')}`]);
    assert.equal(r.code, 0, r.screen);
    assert.match(r.screen, /restore sda \[[=-]*\] \d+% .*ETA /);
  });

  it('a terminal shows counted progress for verify, gc and prune; --quiet shows none', async () => {
    // Set p: two generations of different data, so that prune removes one and gc its packs.
    const other = path.join(dir, 'other.img');
    await makeImage(other, '8M', 9);
    for (const img of [other, image]) assert.equal((await vmbkp(['backup', '--repo', repo, '--set', 'p', `sda=file:${img}`])).code, 0);
    const v = await onTerminal(['verify', '--read-data', '--repo', repo]);
    assert.equal(v.code, 0, v.screen);
    assert.match(v.screen, /verify: reading packs \[[=-]*\] \d+% \| \d+ \/ [1-9]\d* packs \| ETA /);
    assert.match(v.screen, /verify: checking generations \[[=-]*\] \d+% \| \d+ \/ [1-9]\d* generations/);
    assert.match(v.screen, /no problems found/);
    // --no-gc: the gc below then has the removed generation's packs to remove (prune would run it itself).
    const p = await onTerminal(['prune', '--repo', repo, '--set', 'p', '--keep-last', '1', '--no-gc']);
    assert.equal(p.code, 0, p.screen);
    assert.match(p.screen, /prune: reading generations \[[=-]*\] \d+% \| \d+ \/ [1-9]\d* generations/);
    assert.match(p.screen, /prune: removing generations \[[=-]*\] \d+% \| \d+ \/ [1-9]\d* generations/);
    const g = await onTerminal(['gc', '--repo', repo]);
    assert.equal(g.code, 0, g.screen);
    assert.match(g.screen, /gc: reading generations \[[=-]*\] \d+% \| \d+ \/ 2 generations/);
    assert.match(g.screen, /gc: removing packs \[[=-]*\] \d+% \| \d+ \/ [1-9]\d* packs/);
    const quiet = await onTerminal(['verify', '--read-data', '--quiet', '--repo', repo]);
    assert.equal(quiet.code, 0, quiet.screen);
    assert.doesNotMatch(quiet.screen, /ETA|%/);
    assert.match(quiet.screen, /no problems found/);
    // Without a terminal (cron): the result alone.
    const cron = await vmbkp(['verify', '--read-data', '--repo', repo], { env: { CI: '' } });
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stderr, '');
    assert.doesNotMatch(cron.stdout, /ETA|%/);
  });

  it('without a terminal only the result is printed; under --json only JSON', async () => {
    const env = { CI: '' };
    const plain = await vmbkp(['backup', '--repo', repo, '--set', 'vm', `sda=file:${image}`], { env });
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stderr, '');
    assert.doesNotMatch(plain.stdout, /ETA|%/);
    assert.match(plain.stdout, /^set vm generation 2 /);
    const json = await onTerminal(['backup', '--repo', repo, '--set', 'vm', '--json', `sda=file:${image}`]);
    assert.equal(json.code, 0, json.screen);
    assert.doesNotMatch(json.screen, /ETA/);
    assert.equal((JSON.parse(json.screen) as { generation: number }).generation, 3);
  });
});
