/**
 * Acceptance of repository encryption (issue 14), through the CLI:
 *
 * - nothing readable is stored: no sample of a backed-up image's data, no set name, no disk
 *   name, no source path and no chunk's SHA-256 is found in any file of an encrypted
 *   repository, while the same search finds them in a plaintext one;
 * - tampering is found: a byte flipped at the start, middle or end of a blob, a sealed pack
 *   table, an index file, a manifest or a key object, and a manifest copied under another
 *   name, make verify --read-data exit 5 naming the object (and the set, generation and disk
 *   where known); a restore of a damaged generation exits 5;
 * - a wrong password is exit 8 for every command, and nothing is written;
 * - a downgrade (a plaintext config beside the keys) and a changed chunk size are refused
 *   (exit 5), and nothing is written.
 *
 * The repositories here are encrypted (test/helpers.ts gives every vmbkp the tests' password)
 * unless `--encryption none` says otherwise.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kdfForMemory } from '../src/repository/keys.js';
import {
  type VerifyJson, type VerifyProblem, flipByte, listFiles, makeImage, mutateImage, oneLine, sha256File, startVmbkp, tempDir, treeDigest, verifyJson, vmbkp,
} from './helpers.js';
import { type PackedBlob, chunkIds, openTestRepository, packEntries, testPassword } from './repo-internals.js';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const where = (ps: VerifyProblem[]) => ps.filter((p) => p.set !== undefined).map((p) => `${p.set}/${p.generation}/${p.disk}`).sort();

/** Names no other test or file uses, so that finding one means it leaked from here. */
const SET = 'canary-set-q7x3v9';
const DISK = 'canary-disk-k2m8';

describe('encrypted repositories', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-encryption-'));
    await makeImage(file('a.img'), '16M', 401);
    await mutateImage(file('a.img'), file('a2.img'), file('a2.json'), 5, 402);
    await makeImage(file('c.img'), '16M', 403);
  });
  after(() => cleanup());

  describe('nothing readable is stored', () => {
    interface Needle { readonly what: string; readonly bytes: Buffer }
    const needles: Needle[] = [];
    let samples = 0;
    let image: Buffer;

    /** Every needle found in any file of the repository, as "what in file". */
    async function found(repo: string): Promise<string[]> {
      const hits: string[] = [];
      for (const name of await listFiles(repo)) {
        const content = await fs.readFile(path.join(repo, name));
        for (const n of needles) if (content.includes(n.bytes)) hits.push(`${n.what} in ${name}`);
      }
      return hits;
    }

    /** A repository holding two generations of the image, and what a backup killed before its commit left. */
    async function backedUp(name: string, initArgs: string[]): Promise<string> {
      const repo = file(name);
      const disk = file(`${name}.img`);
      await fs.copyFile(file('a.img'), disk);
      for (const args of [['init', ...initArgs], ['backup', '--set', SET, `${DISK}=file:${disk}`], ['backup', '--set', SET, `${DISK}=file:${disk}`], ['verify', '--read-data']]) {
        const r = await vmbkp([...args, '--repo', repo]);
        assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
      }
      // Its lock (which names the set) and its packs stay behind.
      await fs.copyFile(file('a2.img'), disk);
      const killed = startVmbkp(['backup', '--repo', repo, '--set', SET, `${DISK}=file:${disk}`], { env: { VMBKP_FAILPOINT: 'backup:before-commit' } });
      assert.equal((await killed.done).signal, 'SIGKILL');
      assert.equal((await listFiles(path.join(repo, 'locks'))).length, 1, 'the killed backup left its lock');
      return repo;
    }

    let encrypted: string;
    let plaintext: string;
    before(async () => {
      image = await fs.readFile(file('a.img'));
      // 64 bytes at an odd offset in every eighth 4 KiB page, all-zero ones skipped: a few hundred, spread over the data.
      for (let o = 17; o + 64 <= image.length; o += 8 * 4096) {
        const bytes = image.subarray(o, o + 64);
        if (bytes.every((b) => b === 0)) continue;
        needles.push({ what: `image bytes at ${o}`, bytes });
        samples++;
      }
      assert.ok(samples >= 200, `${samples} samples`);
      encrypted = await backedUp('encrypted', []);
      plaintext = await backedUp('plaintext', ['--encryption', 'none']);
      needles.push(
        { what: 'the set name', bytes: Buffer.from(SET, 'utf8') },
        { what: 'the disk name', bytes: Buffer.from(DISK, 'utf8') },
        { what: 'the source path', bytes: Buffer.from(`file:${dir}/`, 'utf8') },
      );
      // The plain SHA-256 of every chunk (what a plaintext repository names it by), raw and in hex.
      const { chunkSize } = (await openTestRepository(encrypted)).config;
      for (let o = 0; o < image.length; o += chunkSize) {
        const chunk = image.subarray(o, o + chunkSize);
        if (chunk.every((b) => b === 0)) continue;
        const digest = createHash('sha256').update(chunk).digest();
        needles.push({ what: `the SHA-256 of the chunk at ${o}`, bytes: digest }, { what: `the hex SHA-256 of the chunk at ${o}`, bytes: Buffer.from(digest.toString('hex')) });
      }
    });

    it('no file of an encrypted repository holds image data, the set or disk name, the source path or a chunk digest', async () => {
      assert.deepEqual(await found(encrypted), []);
      // Nor do object names: they are listed above as files, and the set's directory is a MAC.
      for (const name of await listFiles(encrypted)) assert.ok(!name.includes(SET) && !name.includes(DISK), name);
    });

    it('the same search finds all of these in a plaintext repository (the search works)', async () => {
      const hits = await found(plaintext);
      const sampled = new Set(hits.filter((h) => h.startsWith('image bytes')).map((h) => h.split(' in ')[0]));
      // Text-like regions are stored compressed; random ones as they are, so those samples are found.
      assert.ok(sampled.size >= samples / 10, `${sampled.size} of ${samples} samples found in the plaintext repository`);
      for (const what of ['the set name', 'the disk name', 'the source path']) assert.ok(hits.some((h) => h.startsWith(`${what} in `)), `${what} is found`);
      assert.ok(hits.some((h) => h.startsWith('the set name in locks/')), 'the lock of the killed backup names the set');
      assert.ok(hits.some((h) => h.startsWith('the SHA-256 of the chunk')), 'chunk digests are found in pack trailers and index files');
      assert.ok((await listFiles(plaintext)).some((n) => n.startsWith(`generations/${SET}/`)), 'the set is a directory name');
    });
  });

  describe('tampering is found', () => {
    /** Set vm: generation 1 (image a), generation 2 (a2); set db: generation 1 (image c). Two keys, one password. */
    let template: string;
    let pack1: string;
    let index1: string;
    let keys: string[];
    /** The hidden directories of sets vm and db. */
    let vmDir: string;
    let dbDir: string;
    let ids: { a: Map<string, number[]>; a2: Map<string, number[]>; c: Map<string, number[]> };
    let pack1Blobs: PackedBlob[];

    before(async () => {
      template = file('template');
      const disk = file('disk.img');
      await fs.copyFile(file('a.img'), disk);
      const run = async (args: string[]) => {
        const r = await vmbkp([...args, '--repo', template]);
        assert.equal(r.code, 0, r.stderr);
      };
      await run(['init']);
      await run(['backup', '--set', 'vm', `sda=file:${disk}`]);
      pack1 = path.join('data', (await listFiles(path.join(template, 'data')))[0]!);
      index1 = path.join('index', (await listFiles(path.join(template, 'index')))[0]!);
      await fs.copyFile(file('a2.img'), disk);
      await run(['backup', '--set', 'vm', `sda=file:${disk}`]);
      await run(['backup', '--set', 'db', `sda=file:${file('c.img')}`]);
      const repo = await openTestRepository(template);
      await repo.addKey(await testPassword(), kdfForMemory(1), 'second');
      keys = (await listFiles(path.join(template, 'keys'))).map((k) => path.join('keys', k));
      assert.equal(keys.length, 2);
      const dirs = await listFiles(path.join(template, 'generations'));
      const setDir = (count: number) => {
        const d = [...new Set(dirs.map((n) => n.split('/')[0]!))].filter((x) => dirs.filter((n) => n.startsWith(`${x}/`)).length === count);
        assert.equal(d.length, 1);
        return d[0]!;
      };
      vmDir = setDir(2);
      dbDir = setDir(1);
      ids = { a: chunkIds(repo, await fs.readFile(file('a.img'))), a2: chunkIds(repo, await fs.readFile(file('a2.img'))), c: chunkIds(repo, await fs.readFile(file('c.img'))) };
      pack1Blobs = await packEntries(repo, pack1);
      const v = await verifyJson(template, true);
      assert.equal(v.r.code, 0, v.r.stderr);
    });

    let copies = 0;
    /** A copy of the template, changed by `damage`. */
    async function damaged(damage: (repo: string) => Promise<void>): Promise<string> {
      const repo = file(`damaged-${++copies}`);
      await fs.cp(template, repo, { recursive: true });
      await damage(repo);
      return repo;
    }
    const flipAt = (name: string, offset: (size: number) => number) => async (repo: string) => {
      const f = path.join(repo, name);
      await flipByte(f, offset((await fs.stat(f)).size));
    };
    /** Start, middle and end of an object of `size` bytes, or of the part [from, to). */
    const positions = (from: number, to: number): [string, number][] => [['first', from], ['middle', Math.floor((from + to) / 2)], ['last', to - 1]];

    /** Verify exits 5; returns the problems. */
    async function verifyDamaged(repo: string): Promise<VerifyProblem[]> {
      const v = await verifyJson(repo, true);
      assert.equal(v.r.code, 5, v.r.stderr);
      assert.equal(v.report.ok, false);
      assert.match(oneLine(v.r.stderr), /^vmbkp: error: verify of .* found \d+ problems; first: /);
      return v.report.problems;
    }

    describe('a byte of a chunk blob (nonce, ciphertext, tag)', () => {
      /** A chunk of pack1 used by vm generation 1 and 2, not by db. */
      let chunk: PackedBlob;
      before(() => {
        const shared = pack1Blobs.filter((e) => e.type === 0 && ids.a.has(e.hex) && ids.a2.has(e.hex) && !ids.c.has(e.hex));
        assert.ok(shared.length > 0);
        chunk = shared[Math.floor(shared.length / 2)]!;
      });

      for (const at of ['first', 'middle', 'last'] as const) {
        it(`${at} byte: verify --read-data and a restore exit 5, naming the blob, its pack, and the set, generation and disk`, async () => {
          const [, offset] = positions(chunk.offset, chunk.offset + chunk.length).find(([p]) => p === at)!;
          const repo = await damaged(flipAt(pack1, () => offset));
          const problems = await verifyDamaged(repo);
          assert.deepEqual(where(problems), ['vm/1/sda', 'vm/2/sda']);
          assert.equal(problems.length, 2, JSON.stringify(problems));
          for (const p of problems) {
            const first = (p.generation === 1 ? ids.a : ids.a2).get(chunk.hex)![0];
            assert.equal(p.message, `set vm generation ${p.generation} disk sda: ${(p.generation === 1 ? ids.a : ids.a2).get(chunk.hex)!.length} chunks unreadable (first at offset ${first}: blob ${chunk.hex} in pack ${path.basename(pack1)} is corrupt)`);
          }
          const target = file(`restore-chunk-${at}.img`);
          const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', '1', '--disk', 'sda', '--to', `file:${target}`]);
          assert.equal(r.code, 5, r.stderr);
          assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: restoring set vm generation 1 disk sda failed: the chunk at offset \\d+: blob ${chunk.hex} in pack ${path.basename(pack1)} is corrupt: authentication failed`));
          assert.equal(existsSync(target), false);
        });
      }

      it('a byte of the index piece: even plain verify names generation 1 only', async () => {
        const piece = pack1Blobs.find((e) => e.type === 1)!;
        const repo = await damaged(flipAt(pack1, () => piece.offset + 5));
        const r = await vmbkp(['verify', '--repo', repo, '--json']);
        assert.equal(r.code, 5, r.stderr);
        const { problems } = JSON.parse(r.stdout) as VerifyJson;
        assert.deepEqual(where(problems), ['vm/1/sda']);
        assert.match(problems[0]!.message, new RegExp(`^set vm generation 1 disk sda: .*blob ${piece.hex} in pack ${path.basename(pack1)} is corrupt: authentication failed`));
      });
    });

    describe('a byte of a sealed pack table, its length or its magic', () => {
      let tableStart: number;
      before(() => {
        const last = pack1Blobs.at(-1)!;
        tableStart = last.offset + last.length;
      });
      const cases: [string, (size: number) => number][] = [
        ['the table\'s nonce', () => tableStart],
        ['the middle of the table', (size) => Math.floor((tableStart + size - 12) / 2)],
        ['the table\'s tag', (size) => size - 13],
        ['the table\'s length', (size) => size - 12],
        ['the magic', (size) => size - 1],
      ];
      for (const [what, offset] of cases) {
        it(`${what}: verify --read-data exits 5, the pack does not match its name; its blobs still restore`, async () => {
          const repo = await damaged(flipAt(pack1, offset));
          const problems = await verifyDamaged(repo);
          assert.deepEqual(problems.map((p) => p.message), [`pack ${path.basename(pack1)}: content does not match its name (its trailer is damaged; the blobs it holds are intact)`]);
          const target = file('restore-trailer.img');
          const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', '1', '--disk', 'sda', '--to', `file:${target}`]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await sha256File(target), await sha256File(file('a.img')));
          await fs.rm(target);
        });
      }
    });

    for (const at of ['first', 'middle', 'last'] as const) {
      it(`the ${at} byte of an index file: verify exits 5 naming it and the disks whose chunks it listed`, async () => {
        const repo = await damaged(flipAt(index1, (size) => positions(0, size).find(([p]) => p === at)![1]));
        const problems = await verifyDamaged(repo);
        assert.equal(problems[0]!.message, `reading index file ${index1} failed: content does not match its name (corrupted)`);
        const disks = where(problems);
        assert.ok(disks.includes('vm/1/sda') && !disks.includes('db/1/sda'), disks.join(' '));
        for (const p of problems.slice(1)) assert.match(p.message, /chunks missing from the repository|blob [0-9a-f]{64} is missing/);
      });
    }

    for (const at of ['first', 'middle', 'last'] as const) {
      it(`the ${at} byte of a manifest: verify and a restore exit 5 naming the set, the generation and the object`, async () => {
        const name = `generations/${vmDir}/00000001`;
        const repo = await damaged(flipAt(name, (size) => positions(0, size).find(([p]) => p === at)![1]));
        const problems = await verifyDamaged(repo);
        assert.deepEqual(problems.map((p) => [p.set, p.generation, p.disk]), [['vm', 1, undefined]]);
        assert.match(problems[0]!.message, new RegExp(`^set vm generation 1: reading generation 1 of set vm \\(${esc(name)}\\) failed: authentication failed`));
        const target = file(`restore-manifest-${at}.img`);
        const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', '1', '--disk', 'sda', '--to', `file:${target}`]);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`reading generation 1 of set vm \\(${esc(name)}\\) failed: authentication failed`));
        assert.equal(existsSync(target), false);
      });
    }

    it('the only manifest of a set: its name cannot be known, the object and generation are named', async () => {
      const name = `generations/${dbDir}/00000001`;
      const repo = await damaged(flipAt(name, (size) => size >> 1));
      const problems = await verifyDamaged(repo);
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]!.set, `unknown-${dbDir.slice(0, 16)}`);
      assert.equal(problems[0]!.generation, 1);
      assert.match(problems[0]!.message, new RegExp(`\\(${esc(name)}\\) failed: authentication failed`));
    });

    it('a manifest that does not open: gc refuses (exit 5) and removes nothing it references', async () => {
      const name = `generations/${dbDir}/00000001`;
      const repo = await damaged(flipAt(name, (size) => size >> 1));
      await fs.rm(path.join(repo, `generations/${vmDir}/00000001`)); // garbage for gc to find, were it to run
      const before = await treeDigest(repo);
      const r = await vmbkp(['gc', '--repo', repo]);
      assert.equal(r.code, 5, r.stderr);
      assert.match(oneLine(r.stderr), new RegExp(`\\(${esc(name)}\\) failed: authentication failed`));
      assert.deepEqual(await treeDigest(repo), before);
    });

    it('a manifest copied under another name (another generation, another set) does not open', async () => {
      for (const [from, to] of [[`generations/${vmDir}/00000001`, `generations/${vmDir}/00000003`], [`generations/${vmDir}/00000002`, `generations/${dbDir}/00000002`]] as const) {
        const repo = await damaged(async (r) => { await fs.copyFile(path.join(r, from), path.join(r, to)); });
        const problems = await verifyDamaged(repo);
        assert.equal(problems.length, 1, JSON.stringify(problems));
        assert.match(problems[0]!.message, new RegExp(`\\(${esc(to)}\\) failed: authentication failed`));
      }
    });

    for (const at of ['first', 'middle', 'last'] as const) {
      it(`the ${at} byte of a key object: verify opens with the other key and exits 5 naming the damaged one`, async () => {
        const key = keys[0]!;
        const repo = await damaged(flipAt(key, (size) => positions(0, size).find(([p]) => p === at)![1]));
        const problems = await verifyDamaged(repo);
        assert.deepEqual(problems.map((p) => p.message), [`key ${key} is damaged: content does not match its name`]);
      });
    }

    it('the only key damaged: every command exits 5 and says the key is unreadable; nothing is written', async () => {
      const repo = await damaged(async (r) => {
        await fs.rm(path.join(r, keys[1]!));
        await flipAt(keys[0]!, (size) => size >> 1)(r);
      });
      const before = await treeDigest(repo);
      for (const args of [['verify', '--read-data'], ['list'], ['backup', '--set', 'vm', `sda=file:${file('a.img')}`]]) {
        const r = await vmbkp([...args, '--repo', repo]);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`has no readable key object \\(key ${keys[0]} is damaged: content does not match its name\\)`));
      }
      assert.deepEqual(await treeDigest(repo), before);
    });
  });

  describe('refused with nothing written', () => {
    /** An encrypted repository with one generation of set vm. */
    let template: string;
    before(async () => {
      template = file('refused-template');
      for (const args of [['init'], ['backup', '--set', 'vm', `sda=file:${file('a.img')}`]]) {
        const r = await vmbkp([...args, '--repo', template]);
        assert.equal(r.code, 0, r.stderr);
      }
    });

    /** Every command that opens a repository (restore would write `target`). */
    const commands = (target: string): string[][] => [
      ['backup', '--set', 'vm', `sda=file:${file('a2.img')}`],
      ['verify', '--read-data'],
      ['prune', '--set', 'vm', '--keep-last', '1'],
      ['gc'],
      ['restore', '--set', 'vm', '--disk', 'sda', '--to', `file:${target}`],
      ['list'],
      ['unlock'],
      // Were it let in, it would serve until stopped: the time limit below ends it.
      ['serve', '--set', 'vm', '--disk', 'sda'],
    ];

    let copies = 0;
    async function refusedEverywhere(change: (repo: string) => Promise<void>, code: number, message: RegExp, env?: NodeJS.ProcessEnv): Promise<void> {
      const repo = file(`refused-${++copies}`);
      await fs.cp(template, repo, { recursive: true });
      await change(repo);
      const before = await treeDigest(repo);
      const target = file(`refused-${copies}.img`);
      for (const args of commands(target)) {
        const r = await vmbkp([...args, '--repo', repo], { timeoutMs: 60_000, ...(env ? { env } : {}) });
        assert.equal(r.code, code, `${args[0]}: ${r.stderr}`);
        assert.match(oneLine(r.stderr), message, args[0]);
        assert.deepEqual(await treeDigest(repo), before, `${args[0]} changed the repository`);
      }
      assert.equal(existsSync(target), false, 'restore created its target');
    }

    it('a wrong password: exit 8 for backup, verify, prune, gc, restore, list, unlock and serve', async () => {
      const wrong = file('wrong-password');
      await fs.writeFile(wrong, 'Tr0ub4dor&3\n');
      await refusedEverywhere(async () => {}, 8, /^vmbkp: error: opening repository .* failed: the password opens none of its 1 key$/, { VMBKP_REPO_PASSWORD_FILE: wrong });
    });

    /** Replaces the config's JSON with what `edit` makes of it. */
    const editConfig = (edit: (c: Record<string, unknown>) => Record<string, unknown>) => async (repo: string) => {
      const f = path.join(repo, 'config');
      const c = JSON.parse(await fs.readFile(f, 'utf8')) as Record<string, unknown>;
      await fs.writeFile(f, JSON.stringify(edit(c), null, 2) + '\n');
    };

    it('a plaintext (version 1) config in place of the encrypted one: exit 5 for every command', async () => {
      await refusedEverywhere(editConfig(({ encryption: _, ...c }) => ({ ...c, version: 1 })), 5,
        /^vmbkp: error: opening repository .* refused: its config says it is not encrypted, yet it has keys \(the config was replaced\)$/);
    });

    it('a plaintext config, and the keys removed: every command refused (the set directories and index files give it away)', async () => {
      await refusedEverywhere(async (repo) => {
        await editConfig(({ encryption: _, ...c }) => ({ ...c, version: 1 }))(repo);
        await fs.rm(path.join(repo, 'keys'), { recursive: true });
      }, 5, /^vmbkp: error: opening repository .* refused: .*encrypted/);
    });

    it('a chunk size changed in the encrypted config: its authenticator does not match, exit 5 for every command', async () => {
      await refusedEverywhere(editConfig((c) => ({ ...c, chunkSize: 65536 })), 5,
        /^vmbkp: error: reading the config of repository .* failed: its authenticator does not match \(the config was changed by someone without the key\)$/);
    });
  });
});
