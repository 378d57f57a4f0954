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
