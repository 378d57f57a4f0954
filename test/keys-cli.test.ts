/**
 * `vmbkp key`: the passwords of an encrypted repository through the real CLI. Adding,
 * changing and removing keys (an old password stops working, the last key and the key in
 * use cannot be removed), the recovery copy and the way back with it, the plaintext
 * repository that has no keys. No password, nor the master key, ever appears in the output.
 */
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeRepositoryKey, shortIdLength } from '../src/app/keys.js';
import { UsageError } from '../src/errors.js';
import { kdfForMemory } from '../src/repository/keys.js';
import { RepositoryLock } from '../src/repository/lock.js';
import { Repository } from '../src/repository/repository.js';
import { LocalBackend } from '../src/storage/local.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { REPO_PASSWORD_FILE, type RunResult, makeImage, oneLine, tempDir, treeDigest, vmbkp } from './helpers.js';

/** The fixture's password: every repository here is created with it. */
const FIXTURE_PASSWORD = readFileSync(REPO_PASSWORD_FILE, 'utf8').split('\n')[0]!;

interface KeyJson { id: string; label?: string; created: string; kdf: { memoryMiB: number }; current: boolean }

describe('vmbkp key', { concurrency: true }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let disk: string;
  const file = (name: string) => path.join(dir, name);
  /** Every password these tests use, and the master key once exported: none may appear in any output. */
  const secrets = [FIXTURE_PASSWORD];
  let repos = 0;
  let template: string;
  /** The id of the template's one key (labelled "first"), which its copies share. */
  let firstId: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-keys-'));
    disk = file('disk.img');
    await makeImage(disk, '2M', 41);
    template = await newRepo(true);
    [firstId] = (await fs.readdir(path.join(template, 'keys'))) as [string];
  });
  after(() => cleanup());

  /** Runs the CLI with the repository password from `passwordFile` (the fixture's by default). */
  async function cli(args: string[], passwordFile: string = REPO_PASSWORD_FILE, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    const r = await vmbkp(args, { env: { VMBKP_REPO_PASSWORD_FILE: passwordFile, ...env } });
    for (const s of secrets) {
      assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `vmbkp ${args.join(' ')} printed a secret:\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  async function ok(args: string[], passwordFile?: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const r = await cli(args, passwordFile, env);
    assert.equal(r.code, 0, `vmbkp ${args.join(' ')}: ${r.stderr}`);
    return r;
  }

  /** A refused command: its exit code, one line on stderr matching `re`, nothing on stdout, the repository unchanged. */
  async function refused(repo: string, args: string[], code: number, re: RegExp, passwordFile?: string, env?: NodeJS.ProcessEnv): Promise<string> {
    const before = await treeDigest(repo);
    const r = await cli(args, passwordFile, env);
    assert.equal(r.code, code, `vmbkp ${args.join(' ')}: expected exit ${code}, got ${r.code}: ${r.stderr}`);
    const line = oneLine(r.stderr);
    assert.match(line, re);
    assert.equal(r.stdout, '');
    assert.deepEqual(await treeDigest(repo), before, `vmbkp ${args.join(' ')} changed the repository`);
    return line;
  }

  async function password(name: string): Promise<string> {
    const text = `pw-${name}-${Math.random().toString(36).slice(2)}`;
    secrets.push(text);
    await fs.writeFile(file(`${name}.password`), `${text}\n`, { mode: 0o600 });
    return file(`${name}.password`);
  }

  /**
   * An encrypted repository with one backup of set vm, its key labelled "first": a copy of
   * the template, or with `fresh` a new one (another master key).
   */
  async function newRepo(fresh = false): Promise<string> {
    const repo = file(`repo-${++repos}`);
    if (!fresh) {
      await fs.cp(template, repo, { recursive: true });
      return repo;
    }
    await ok(['init', '--repo', repo, '--key-label', 'first']);
    await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${disk}`]);
    return repo;
  }

  async function keys(repo: string, passwordFile?: string): Promise<KeyJson[]> {
    const r = await ok(['key', 'list', '--repo', repo, '--json'], passwordFile);
    return (JSON.parse(r.stdout) as { keys: KeyJson[] }).keys;
  }

  /** The password opens the repository: list shows its set. */
  async function opens(repo: string, passwordFile: string): Promise<void> {
    const r = await ok(['list', '--repo', repo, '--json'], passwordFile);
    assert.deepEqual((JSON.parse(r.stdout) as { sets: { name: string }[] }).sets.map((s) => s.name), ['vm']);
  }

  async function wrongPassword(repo: string, passwordFile: string): Promise<void> {
    await refused(repo, ['list', '--repo', repo], 8, /^vmbkp: error: opening repository .* failed: the password opens none of its \d+ keys?$/, passwordFile);
  }

  it('list, add, passwd, remove: a round trip; after passwd the old password is exit 8 and the new one works', async () => {
    const repo = await newRepo();
    const second = await password('second');
    const third = await password('third');

    // key list: the one key, its label and KDF memory, marked as the one the password opened.
    const human = (await ok(['key', 'list', '--repo', repo])).stdout;
    assert.match(human, new RegExp(`^\\*\\s+${firstId.slice(0, 8)}\\s+first\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+1 MiB$`, 'm'));
    assert.ok(!human.includes(firstId.slice(0, 9)), 'the table shows 8 hex digits of the id');
    assert.equal(human.trim().split('\n').length, 4, `one key in the table:\n${human}`);
    const first = { id: firstId };

    // key add: the fixture's password opens, the new one is read from --new-password-file.
    const added = JSON.parse((await ok(['key', 'add', '--repo', repo, '--label', 'second', '--kdf-memory', '2', '--new-password-file', second, '--json'])).stdout) as { added: KeyJson };
    assert.equal(added.added.label, 'second');
    assert.equal(added.added.kdf.memoryMiB, 2);
    const both = await keys(repo, second);
    assert.deepEqual(both.map((k) => [k.id, k.label, k.kdf.memoryMiB, k.current]), [[first.id, 'first', 1, false], [added.added.id, 'second', 2, true]]);

    // key passwd, opened with the second password: a key for the third replaces the second's.
    const changed = JSON.parse((await ok(['key', 'passwd', '--repo', repo, '--new-password-file', third, '--json'], second)).stdout) as { added: KeyJson; removed: KeyJson };
    assert.equal(changed.removed.id, added.added.id);
    assert.equal(changed.added.label, 'second', 'the new key keeps the label');
    await wrongPassword(repo, second);
    assert.deepEqual((await keys(repo, third)).map((k) => k.id).sort(), [first.id, changed.added.id].sort());

    // The key in use (the fixture's password still opens it) is not removed: the message names the other key and how to give its password.
    const line = await refused(repo, ['key', 'remove', first.id.slice(0, 8), '--repo', repo], 2,
      /key remove refused: key [0-9a-f]{8} \("first"\) is the one your password opened; give the password of another key \([0-9a-f]{8} \("second"\)\) with --repo-password-file FILE/);
    assert.ok(line.includes(changed.added.id.slice(0, 8)));

    // With another key's password it is removed, and its password stops working.
    const removed = JSON.parse((await ok(['key', 'remove', first.id.slice(0, 6), '--repo', repo, '--json'], third)).stdout) as { removed: KeyJson };
    assert.equal(removed.removed.id, first.id);
    await wrongPassword(repo, REPO_PASSWORD_FILE);
    await opens(repo, third);

    // The last key is never removed.
    await refused(repo, ['key', 'remove', changed.added.id, '--repo', repo], 2, /key remove refused: key [0-9a-f]{8} \("second"\) is the last key of repository .*; without it nobody could open the repository/, third);
  });

  it('key passwd to the same password is refused, nothing changed', async () => {
    const repo = await newRepo();
    await refused(repo, ['key', 'passwd', '--repo', repo, '--new-password-file', REPO_PASSWORD_FILE], 2, /key passwd: the new password is the one key [0-9a-f]{8} \("first"\) already has; nothing was changed/);
  });

  it('key remove of an unknown id, or not an id: exit 2 listing the keys, nothing changed', async () => {
    const repo = await newRepo();
    const other = firstId[0] === 'f' ? '0' : 'f';
    await refused(repo, ['key', 'remove', `${other}${firstId.slice(1, 8)}`, '--repo', repo], 2, new RegExp(`has no key ${other}[0-9a-f]{7}; its keys: ${firstId.slice(0, 8)} \\("first"\\)$`));
    await refused(repo, ['key', 'remove', 'not-hex', '--repo', repo], 2, /key remove: "not-hex" is not a key id/);
  });

  it('key remove takes the repository to itself: exit 4 while another command holds a lock', async () => {
    const repo = await newRepo();
    await ok(['key', 'add', '--repo', repo, '--new-password-file', await password('lock')]);
    const inProcess = await Repository.open(new LocalBackend(repo), { password: async () => FIXTURE_PASSWORD });
    const lock = await RepositoryLock.acquire(inProcess, 'shared', 'backup of set vm');
    try {
      await refused(repo, ['key', 'remove', firstId.slice(0, 8), '--repo', repo], 4, /is locked by backup of set vm/, file('lock.password'));
    } finally {
      await lock.release();
    }
    await ok(['key', 'remove', firstId.slice(0, 8), '--repo', repo], file('lock.password'));
  });

  it('an ambiguous id prefix: a usage error listing the keys it names', async () => {
    // In process, on a memory backend: add keys until two share their first hex digit.
    const repo = await Repository.init(new MemoryBackend('ambiguous'), { encryption: { password: 'p0', kdf: kdfForMemory(1) } });
    const ids = [repo.currentKey!.id];
    let shared: string | undefined;
    for (let i = 1; shared === undefined; i++) {
      const k = await repo.addKey(`p${i}`, kdfForMemory(1), `k${i}`);
      shared = ids.find((id) => id[0] === k.id[0])?.[0];
      ids.push(k.id);
    }
    await assert.rejects(removeRepositoryKey(repo, shared), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, new RegExp(`^key remove: ${shared} names 2 keys: ${shared}[0-9a-f]{7}.*, ${shared}[0-9a-f]{7}.*; give more digits$`));
      return true;
    });
    assert.equal((await repo.keys()).length, ids.length, 'nothing was removed');
  });

  it('ids are shown with 8 digits, more where two keys share them', () => {
    assert.equal(shortIdLength(['0123456789', 'abcdef0123']), 8);
    assert.equal(shortIdLength(['0123456789', '0123456799']), 9);
    assert.equal(shortIdLength([]), 8);
  });

  it('key export writes a 0600 recovery copy, never over a file, and prints no key material; key add --master-key-file is the way back', async () => {
    const repo = await newRepo();
    const copy = file('recovery.key');
    const r = await ok(['key', 'export', '--repo', repo, '--to', copy]);
    assert.equal((await fs.stat(copy)).mode & 0o777, 0o600);
    assert.match(oneLine(r.stderr), /^vmbkp: warning: whoever holds .*recovery\.key can read every backup in /);
    const recovery = JSON.parse(await fs.readFile(copy, 'utf8')) as { encryption: string; mac: string };
    secrets.push(recovery.encryption, recovery.mac, Buffer.from(recovery.encryption, 'base64').toString('hex'), Buffer.from(recovery.mac, 'base64').toString('hex'));
    for (const s of secrets.slice(-4)) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), 'key export printed the master key');

    // Never over an existing file.
    const content = await fs.readFile(copy);
    await refused(repo, ['key', 'export', '--repo', repo, '--to', copy], 2, /key export refused: .*recovery\.key exists; it is not overwritten/);
    assert.deepEqual(await fs.readFile(copy), content);

    // Every password lost: the fixture's key removed by hand, as if forgotten.
    for (const name of await fs.readdir(path.join(repo, 'keys'))) await fs.rm(path.join(repo, 'keys', name));
    const fresh = await password('recovered');
    await ok(['key', 'add', '--repo', repo, '--master-key-file', copy, '--new-password-file', fresh, '--label', 'recovered'], file('no-such-password-file'));
    const list = await keys(repo, fresh);
    assert.deepEqual(list.map((k) => [k.label, k.current]), [['recovered', true]]);

    // Another repository's copy, or a file that is no copy, opens nothing.
    const other = file(`repo-${++repos}`);
    await ok(['init', '--repo', other]);
    await refused(other, ['key', 'add', '--repo', other, '--master-key-file', copy, '--new-password-file', fresh], 2, /master key file .*recovery\.key belongs to repository [0-9a-f-]{36}, not to /);
    await refused(other, ['key', 'add', '--repo', other, '--master-key-file', disk, '--new-password-file', fresh], 2, /master key file .*disk\.img is not a vmbkp master key \(written by: vmbkp key export\)$/);
  });

  it('a new key without a new password and without a terminal: exit 2 naming the ways to give one', async () => {
    const repo = await newRepo();
    for (const sub of ['add', 'passwd']) {
      await refused(repo, ['key', sub, '--repo', repo], 2, new RegExp(`key ${sub} needs the new key's password: give --new-password-file FILE or VMBKP_NEW_REPO_PASSWORD_FILE, or run it on a terminal$`));
    }
    // VMBKP_NEW_REPO_PASSWORD_FILE is the other way.
    const viaEnv = await password('via-env');
    await ok(['key', 'add', '--repo', repo], REPO_PASSWORD_FILE, { VMBKP_NEW_REPO_PASSWORD_FILE: viaEnv });
    await opens(repo, viaEnv);
  });

  it('on a plaintext repository every key command is a one-line exit 2', async () => {
    const repo = file('plain');
    await ok(['init', '--repo', repo, '--encryption', 'none']);
    const pw = await password('plain');
    // A real recovery copy (of another repository): the plaintext one is refused before its id is compared.
    const copy = file('encrypted.key');
    const encrypted = await Repository.open(new LocalBackend(template), { password: async () => FIXTURE_PASSWORD });
    await fs.writeFile(copy, encrypted.exportMasterKey(), { mode: 0o600 });
    const target = file('plain.key');
    for (const args of [['list'], ['add', '--new-password-file', pw], ['add', '--master-key-file', copy, '--new-password-file', pw], ['remove', '0123abcd'], ['passwd', '--new-password-file', pw], ['export', '--to', target]]) {
      await refused(repo, ['key', ...args, '--repo', repo], 2, /failed: repository .* is not encrypted \(it was created with --encryption none\), so it has no keys$/);
    }
    await assert.rejects(fs.stat(target), { code: 'ENOENT' });
  });
});
