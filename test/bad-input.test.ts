/**
 * Bad input is refused with one line on stderr that names what is wrong, the documented
 * exit code, nothing on stdout, and the repository exactly as it was (no lock, no tmp
 * file, no data left behind).
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, type RunResult, makeImage, oneLine, run, sha256File, startVmbkp, tempDir, treeDigest, vmbkp } from './helpers.js';

/** Every file with its digest and every directory: what "unchanged" means here. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = await treeDigest(dir);
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      out.set(`${path.relative(dir, p)}/`, 'dir');
      await walk(p);
    }
  };
  await walk(dir);
  return out;
}

/** Checks a refused command: exit code, one stderr line matching `re`, nothing on stdout. */
function assertRefused(r: RunResult, code: number, re: RegExp): void {
  assert.equal(r.signal, null);
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}; stderr: ${r.stderr}`);
  const line = oneLine(r.stderr);
  assert.match(line, /^vmbkp: error: /);
  assert.match(line, re);
  assert.equal(r.stdout, '', 'a refused command prints nothing on stdout');
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('bad input', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const file = (name: string) => path.join(dir, name);
  let template: string;
  let disk: string;
  const DISK_SIZE = 8 * 1024 * 1024;

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-bad-input-'));
    disk = file('disk.img');
    await makeImage(disk, '8M', 301);
    template = file('template');
    assert.equal((await vmbkp(['init', '--repo', template])).code, 0);
    const r = await vmbkp(['backup', '--repo', template, '--set', 'vm', `sda=file:${disk}`]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => cleanup());

  let copies = 0;
  /** A private copy of the template repository. */
  async function repoCopy(): Promise<string> {
    const repo = file(`repo-${++copies}`);
    await fs.cp(template, repo, { recursive: true });
    return repo;
  }

  /** Runs a command that must be refused and checks the repository did not change. */
  async function refused(repo: string, args: string[], code: number, re: RegExp): Promise<RunResult> {
    const before = await snapshot(repo);
    const r = await vmbkp(args);
    assertRefused(r, code, re);
    assert.deepEqual(await snapshot(repo), before, `vmbkp ${args.join(' ')} changed the repository`);
    return r;
  }

  it('a directory without a repository: exit 6, naming the path', async () => {
    const empty = file('empty');
    await fs.mkdir(empty);
    for (const args of [['list'], ['verify'], ['gc'], ['backup', '--set', 'vm', `sda=file:${disk}`]]) {
      await refused(empty, [...args, '--repo', empty], 6, new RegExp(`no vmbkp repository at ${esc(empty)}: it has no config \\(create one with: vmbkp init --repo ${esc(empty)}\\)$`));
    }
    const missing = file('no-such-dir');
    for (const args of [
      ['list'], ['verify', '--read-data'], ['gc'], ['unlock'], ['prune', '--set', 'vm', '--keep-last', '1'],
      ['backup', '--set', 'vm', `sda=file:${disk}`], ['restore', '--set', 'vm', '--disk', 'sda', '--to', `file:${file('never.img')}`],
    ]) {
      const r = await vmbkp([...args, '--repo', missing]);
      assertRefused(r, 6, new RegExp(`no vmbkp repository at ${esc(missing)}`));
      assert.equal(existsSync(missing), false, `${args[0]} created ${missing}`);
    }
    assert.equal(existsSync(file('never.img')), false);
  });

  it('an unknown format version: exit 6 for every command, nothing touched', async () => {
    const repo = await repoCopy();
    const configFile = path.join(repo, 'config');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8')) as { version: number };
    assert.equal(config.version, 2, 'the template is encrypted, as a repository is by default');
    await fs.writeFile(configFile, JSON.stringify({ ...config, version: 99 }, null, 2) + '\n');
    const target = file('v99.img');
    for (const args of [
      ['list'], ['verify'], ['verify', '--read-data'], ['gc'], ['unlock', '--all'], ['prune', '--set', 'vm', '--keep-last', '1'],
      ['backup', '--set', 'vm', `sda=file:${disk}`], ['restore', '--set', 'vm', '--disk', 'sda', '--to', `file:${target}`],
    ]) {
      await refused(repo, [...args, '--repo', repo], 6, new RegExp(`repository ${esc(repo)} has format version 99; this vmbkp reads versions 1 and 2 only$`));
    }
    assert.equal(existsSync(target), false);
  });

  it('a missing disk file: exit 2, naming the file', async () => {
    const repo = await repoCopy();
    const gone = file('no-such-disk.img');
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', `sda=file:${gone}`], 2, new RegExp(`opening disk file ${esc(gone)} failed: no such file$`));
    // Also when it is the second of two disks: the first is not backed up alone.
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', `sda=file:${disk}`, `sdb=file:${gone}`], 2, new RegExp(`opening disk file ${esc(gone)} failed`));
  });

  it('malformed changed-extents files: exit 2, naming the file', async () => {
    const repo = await repoCopy();
    const cases: [string, string, RegExp][] = [
      ['truncated.json', '[{"start": 0, "length": ', /changed extents .*truncated\.json is not valid JSON/],
      ['object.json', '{"start": 0, "length": 65536}', /changed extents .*object\.json must be a JSON array of \{"start": N, "length": N\}/],
      ['strings.json', '[{"start": 0, "length": 65536}, {"start": "0", "length": 65536}]', /changed extents .*strings\.json: entry 1 must be an object \{"start": N, "length": N\}/],
    ];
    for (const [name, text, re] of cases) {
      await fs.writeFile(file(name), text);
      await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--mode', 'incr', '--changed', `sda=${file(name)}`, `sda=file:${disk}`], 2, re);
    }
    const gone = file('no-such-extents.json');
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--changed', `sda=${gone}`, `sda=file:${disk}`], 2,
      new RegExp(`reading changed extents ${esc(gone)} for disk sda failed: ENOENT`));
    const valid = file('valid.json');
    await fs.writeFile(valid, JSON.stringify([{ start: 0, length: 65536 }]));
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--changed', `sdb=${valid}`, `sda=file:${disk}`], 2,
      /--changed names disk sdb, which is not backed up/);
  });

  it('changed extents past the disk\'s end, or negative: exit 2, naming the extent and the disk', async () => {
    const repo = await repoCopy();
    const past = file('past-end.json');
    await fs.writeFile(past, JSON.stringify([{ start: 0, length: 65536 }, { start: DISK_SIZE - 65536, length: 131072 }]));
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--mode', 'incr', '--changed', `sda=${past}`, `sda=file:${disk}`], 2,
      new RegExp(`changed extents of disk sda of set vm: extent 1 \\{start: ${DISK_SIZE - 65536}, length: 131072\\} ends at ${DISK_SIZE + 65536}, past the disk's end \\(${DISK_SIZE} bytes\\)$`));
    const negative = file('negative.json');
    await fs.writeFile(negative, JSON.stringify([{ start: -65536, length: 65536 }]));
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--mode', 'auto', '--changed', `sda=${negative}`, `sda=file:${disk}`], 2,
      /changed extents of disk sda of set vm: extent 0 \{start: -65536, length: 65536\} is invalid/);
  });

  it('incr without changed extents, or without a previous generation: exit 2', async () => {
    const repo = await repoCopy();
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--mode', 'incr', `sda=file:${disk}`], 2,
      /^vmbkp: error: disk sda of set vm: incr needs the changed extents since the previous generation \(no changed extents given and no change token from the previous generation\)/);
    const ext = file('some.json');
    await fs.writeFile(ext, JSON.stringify([{ start: 0, length: 65536 }]));
    await refused(repo, ['backup', '--repo', repo, '--set', 'new', '--mode', 'incr', '--changed', `sda=${ext}`, `sda=file:${disk}`], 2,
      /^vmbkp: error: disk sda of set new: incr is not possible \(set new has no generation yet\)/);
    await refused(repo, ['backup', '--repo', repo, '--set', 'new', '--mode', 'diff', `sda=file:${disk}`], 2,
      /^vmbkp: error: disk sda of set new: diff is not possible \(set new has no generation yet\)/);
  });

  it('restore of an unknown set, generation or disk: exit 2, no target created', async () => {
    const repo = await repoCopy();
    const target = file('unknown.img');
    const restore = (set: string, generation: string, d: string) =>
      ['restore', '--repo', repo, '--set', set, '--generation', generation, '--disk', d, '--to', `file:${target}`];
    await refused(repo, restore('nosuch', 'latest', 'sda'), 2, new RegExp(`set nosuch has no generations in ${esc(repo)}$`));
    await refused(repo, restore('nosuch', '1', 'sda'), 2, /set nosuch has no generation 1$/);
    await refused(repo, restore('vm', '7', 'sda'), 2, /set vm has no generation 7$/);
    await refused(repo, restore('vm', 'latest', 'sdb'), 2, /set vm generation 1 has no disk sdb \(it has: sda\)$/);
    await refused(repo, restore('vm', 'first', 'sda'), 2, /generation "first" is invalid: give a number, latest, latest~N, a date or date-time \(.*\) or 4 or more hex digits of a generation id$/);
    await refused(repo, restore('../vm', 'latest', 'sda'), 2, /set name "\.\.\/vm" is invalid/);
    assert.equal(existsSync(target), false);
  });

  it('restore onto an existing file without --overwrite: exit 2, the file unchanged', async () => {
    const repo = await repoCopy();
    const target = file('exists.img');
    await fs.writeFile(target, 'an image the user wants to keep\n');
    const digest = await sha256File(target);
    await refused(repo, ['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `file:${target}`], 2,
      new RegExp(`restoring to ${esc(target)} refused: the file exists \\(pass --overwrite to replace it\\)$`));
    assert.equal(await sha256File(target), digest);
    // With --overwrite the same command succeeds: the refusal was about the existing file only.
    const ok = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `file:${target}`, '--overwrite']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await sha256File(target), await sha256File(disk));
  });

  it('a second prune (or a backup) while a prune runs: exit 4, naming the holder', async () => {
    const repo = await repoCopy();
    const first = startVmbkp(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1'], { env: { VMBKP_FAILPOINT: 'prune:locked:pause' } });
    try {
      await first.stderrMatching(/failpoint prune:locked: paused/);
      const holder = new RegExp(`^vmbkp: error: repository ${esc(repo)} is locked by prune of vm \\(pid ${first.pid} on [^,]+, since [^)]+\\); `);
      await refused(repo, ['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1'], 4,
        new RegExp(`${holder.source}prune of vm needs it to itself, try again when it is done$`));
      await refused(repo, ['backup', '--repo', repo, '--set', 'vm', `sda=file:${disk}`], 4,
        new RegExp(`${holder.source}backup of vm needs it without an exclusive holder, try again when it is done$`));
    } finally {
      first.child.kill('SIGKILL');
      await first.done;
    }
  });

  it('no --repo and no VMBKP_REPO: exit 2; VMBKP_REPO alone works', async () => {
    const cwd = file('cwd');
    await fs.mkdir(cwd);
    const before = await snapshot(cwd);
    const env = { VMBKP_REPO: undefined };
    for (const args of [['list'], ['init'], ['verify'], ['backup', '--set', 'vm', `sda=file:${disk}`]]) {
      const r = await run(process.execPath, [CLI, ...args], { env, cwd });
      assertRefused(r, 2, /no repository given: pass --repo DIR \(or s3:URL, or the name of a repository in the config file\), set VMBKP_REPO, or set defaults\.repository in the config file$/);
    }
    assert.deepEqual(await snapshot(cwd), before);
    const ok = await run(process.execPath, [CLI, 'list', '--json'], { env: { VMBKP_REPO: template }, cwd });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { sets: { name: string }[] }).sets[0]?.name, 'vm');
  });

  it('a bad --mode: exit 2, naming the value', async () => {
    const repo = await repoCopy();
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', '--mode', 'fast', `sda=file:${disk}`], 2,
      /--mode "fast" is invalid: use auto, full, diff or incr$/);
  });

  it('--keep-last 0 (or not a number, or missing): exit 2, nothing pruned', async () => {
    const repo = await repoCopy();
    await refused(repo, ['prune', '--repo', repo, '--set', 'vm', '--keep-last', '0'], 2, /prune needs --keep-last N with N ≥ 1/);
    await refused(repo, ['prune', '--repo', repo, '--set', 'vm', '--keep-last', 'all'], 2, /--keep-last needs a whole number, got "all"$/);
    await refused(repo, ['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1', '--keep-daily', '1.5'], 2, /--keep-daily needs a whole number, got "1\.5"$/);
    await refused(repo, ['prune', '--repo', repo, '--set', 'vm'], 2, /--keep-last/);
  });
});
