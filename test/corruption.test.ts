/**
 * A damaged repository is found and named: a flipped byte in a chunk, in an index piece,
 * a deleted pack, a corrupted index file, two blobs swapped in a pack. verify says which set, generation and disk
 * are affected; a restore of an affected generation fails with exit 5, names the chunk,
 * and leaves no target behind.
 *
 * The repository: set vm generation 1 (image a), generation 2 (a2 = a with 5% changed,
 * incr), set other generation 1 (image c). Each backup writes one pack and one index file.
 * Every test runs against an encrypted and a plaintext repository: what is damaged is
 * found through the repository's own keys (test/repo-internals.ts), not by reading a
 * byte layout only one kind has.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type VerifyJson, type VerifyProblem, flipByte, listFiles, makeImage, mutateImage, oneLine, sha256File, tempDir, verifyJson, vmbkp, vmbkpJson } from './helpers.js';
import { type PackedBlob, REPOSITORY_KINDS, chunkIds, initArgs, openTestRepository, packEntries } from './repo-internals.js';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('corruption is found and named', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const file = (name: string) => path.join(dir, name);
  const sha = new Map<string, string>();

  // The images, made once for both kinds of repository.
  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-corrupt-'));
    await makeImage(file('a.img'), '16M', 201);
    await mutateImage(file('a.img'), file('a2.img'), file('a2.json'), 5, 202);
    await makeImage(file('c.img'), '16M', 203);
    for (const n of ['a', 'a2', 'c']) sha.set(n, await sha256File(file(`${n}.img`)));
  });
  after(() => cleanup());

  for (const kind of REPOSITORY_KINDS) describe(`${kind} repository`, () => {
    /** The pristine repository; each test damages a copy. */
    let template: string;
    /** The pack and index file written by the backup of vm generation 1. */
    let pack1: string;
    let index1: string;
    /** A chunk blob of pack1 that both generations of vm use and set other does not. */
    let chunk: PackedBlob;
    let chunkAt: { gen1: number[]; gen2: number[] };
    /** The index piece of vm generation 1 (in pack1; generation 2's is in its own pack). */
    let piece: PackedBlob;
    /** Every blob of pack1. */
    let entries: PackedBlob[];
    let ids: { a: Map<string, number[]>; a2: Map<string, number[]>; c: Map<string, number[]> };

    before(async () => {
      template = file(`template-${kind}`);
      assert.equal((await vmbkp(['init', '--repo', template, ...initArgs(kind)])).code, 0);
      const disk = file(`disk-${kind}.img`);
      await fs.copyFile(file('a.img'), disk);
      assert.equal((await vmbkp(['backup', '--repo', template, '--set', 'vm', `sda=file:${disk}`])).code, 0);
      const packs = await listFiles(path.join(template, 'data'));
      const indexes = await listFiles(path.join(template, 'index'));
      assert.equal(packs.length, 1, 'a 16 MiB image fits one pack');
      assert.equal(indexes.length, 1);
      pack1 = path.join('data', packs[0]!);
      index1 = path.join('index', indexes[0]!);
      await fs.copyFile(file('a2.img'), disk);
      assert.equal((await vmbkp(['backup', '--repo', template, '--set', 'vm', '--mode', 'incr', '--changed', `sda=${file('a2.json')}`, `sda=file:${disk}`])).code, 0);
      assert.equal((await vmbkp(['backup', '--repo', template, '--set', 'other', `sda=file:${file('c.img')}`])).code, 0);
      assert.equal((await listFiles(path.join(template, 'data'))).length, 3);

      const repo = await openTestRepository(template);
      assert.equal(repo.encrypted, kind === 'encrypted');
      ids = { a: chunkIds(repo, await fs.readFile(file('a.img'))), a2: chunkIds(repo, await fs.readFile(file('a2.img'))), c: chunkIds(repo, await fs.readFile(file('c.img'))) };
      entries = await packEntries(repo, pack1);
      const shared = entries.filter((e) => e.type === 0 && ids.a.has(e.hex) && ids.a2.has(e.hex) && !ids.c.has(e.hex));
      assert.ok(shared.length > 4, 'generation 2 shares most chunks with generation 1');
      chunk = shared[Math.floor(shared.length / 2)]!;
      chunkAt = { gen1: ids.a.get(chunk.hex)!, gen2: ids.a2.get(chunk.hex)! };
      const pieces = entries.filter((e) => e.type === 1);
      assert.equal(pieces.length, 1, 'a 16 MiB disk has one index piece');
      piece = pieces[0]!;
    });

    /** A fresh copy of the template for one test. */
    async function copy(name: string): Promise<string> {
      const repo = file(`${kind}-${name}`);
      await fs.cp(template, repo, { recursive: true });
      return repo;
    }

    const where = (ps: VerifyProblem[]) => ps.filter((p) => p.set !== undefined).map((p) => `${p.set}/${p.generation}/${p.disk}`).sort();

    /** Restores and returns the exit, the one stderr line and whether the target exists. */
    async function restore(repo: string, set: string, generation: number, target: string, overwrite = false) {
      const r = await vmbkp(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', 'sda', '--to', `file:${target}`, ...(overwrite ? ['--overwrite'] : [])]);
      return { code: r.code, stderr: r.stderr, exists: existsSync(target) };
    }

    it('the template is sound', async () => {
      const v = await verifyJson(template, true);
      assert.equal(v.r.code, 0, v.r.stderr);
      assert.deepEqual(v.report.problems, []);
      assert.equal(v.report.generations, 3);
    });

    describe('a flipped byte inside a chunk', () => {
      let repo: string;
      const packId = () => path.basename(pack1);
      before(async () => {
        repo = await copy('flipped-chunk');
        await flipByte(path.join(repo, pack1), chunk.offset + Math.floor(chunk.length / 2));
      });

      it('verify --read-data exits 5 and names both generations of vm that use the chunk, not set other', async () => {
        const v = await verifyJson(repo, true);
        assert.equal(v.r.code, 5, v.r.stderr);
        assert.equal(v.report.ok, false);
        assert.ok(v.report.bytesRead > 0);
        assert.deepEqual(where(v.report.problems), ['vm/1/sda', 'vm/2/sda']);
        assert.equal(v.report.problems.length, 2, JSON.stringify(v.report.problems));
        for (const [g, offsets] of [[1, chunkAt.gen1], [2, chunkAt.gen2]] as const) {
          const p = v.report.problems.find((x) => x.generation === g)!;
          assert.match(p.message, new RegExp(`^set vm generation ${g} disk sda: ${offsets.length} chunks unreadable \\(first at offset ${offsets[0]}: blob ${chunk.hex} in pack ${packId()} is corrupt\\)$`));
        }
        const line = oneLine(v.r.stderr);
        assert.match(line, new RegExp(`^vmbkp: error: verify of ${esc(repo)} found 2 problems; first: set vm generation 1 disk sda: .*offset ${chunkAt.gen1[0]}: blob ${chunk.hex} in pack ${packId()} is corrupt`));
      });

      it('plain verify (no --read-data) does not read chunks: it exits 0', async () => {
        // Documented behaviour: without --read-data, verify checks that every referenced blob is
        // indexed and that its pack exists and is long enough; it does not read chunk data.
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 0, v.r.stderr);
        assert.equal(v.report.ok, true);
        assert.deepEqual(v.report.problems, []);
        assert.equal(v.report.bytesRead, 0);
      });

      for (const [g, key] of [[1, 'gen1'], [2, 'gen2']] as const) {
        it(`restoring vm generation ${g} exits 5 naming the chunk, and leaves no target`, async () => {
          const target = file(`${kind}-restore-flipped-${g}.img`);
          const r = await restore(repo, 'vm', g, target);
          assert.equal(r.code, 5, r.stderr);
          assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: restoring set vm generation ${g} disk sda failed: the chunk at offset ${chunkAt[key][0]}: blob ${chunk.hex} in pack ${packId()} is corrupt: `));
          assert.equal(r.exists, false, 'no partly restored image is left behind');
        });
      }

      it('a failed restore with --overwrite does not leave a half-written image either', async () => {
        const target = file(`${kind}-restore-overwrite.img`);
        await fs.writeFile(target, 'previous content');
        const r = await restore(repo, 'vm', 1, target, true);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), /is corrupt/);
        // The old file was truncated when the restore opened it; what must not remain is an image that looks whole.
        assert.equal(r.exists, false);
      });

      it('set other, which does not use the chunk, still restores byte-identical', async () => {
        const target = file(`${kind}-restore-other.img`);
        const r = await restore(repo, 'other', 1, target);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(target), sha.get('c'));
        await fs.rm(target);
      });
    });

    describe('a flipped byte inside the index piece of vm generation 1', () => {
      let repo: string;
      before(async () => {
        repo = await copy('flipped-piece');
        await flipByte(path.join(repo, pack1), piece.offset + Math.floor(piece.length / 2));
      });

      it('even plain verify finds it (disk indexes are read and checked), naming vm generation 1 only', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        assert.deepEqual(where(v.report.problems), ['vm/1/sda']);
        assert.match(v.report.problems[0]!.message, new RegExp(`^set vm generation 1 disk sda: .*blob ${piece.hex} in pack ${path.basename(pack1)} is corrupt`));
        assert.match(oneLine(v.r.stderr), new RegExp(`^vmbkp: error: verify of .* found 1 problems; first: set vm generation 1 disk sda: `));
      });

      it('verify still counts the damaged generation and disk', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        // The manifests are intact: the repository has 3 generations with 3 disks, one of them damaged.
        assert.equal(v.report.generations, 3, `verify reports ${v.report.generations} generations`);
        assert.equal(v.report.disks, 3, `verify reports ${v.report.disks} disks`);
      });

      it('verify names the damaged disk once', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        const message = v.report.problems[0]!.message;
        assert.equal(message.split('set vm generation 1 disk sda').length - 1, 1, `the disk is named once: ${message}`);
      });

      it('restore of generation 1 exits 5 and leaves no target; generation 2 restores byte-identical', async () => {
        const t1 = file(`${kind}-restore-piece-1.img`);
        const r1 = await restore(repo, 'vm', 1, t1);
        assert.equal(r1.code, 5, r1.stderr);
        assert.match(oneLine(r1.stderr), new RegExp(`^vmbkp: error: restoring set vm generation 1 disk sda: blob ${piece.hex} in pack ${path.basename(pack1)} is corrupt`));
        assert.equal(r1.exists, false);
        const t2 = file(`${kind}-restore-piece-2.img`);
        const r2 = await restore(repo, 'vm', 2, t2);
        assert.equal(r2.code, 0, r2.stderr);
        assert.equal(await sha256File(t2), sha.get('a2'));
        await fs.rm(t2);
      });
    });

    describe('a deleted pack', () => {
      let repo: string;
      before(async () => {
        repo = await copy('deleted-pack');
        await fs.rm(path.join(repo, pack1));
      });

      it('plain verify exits 5 and names both generations of vm, not set other', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        assert.deepEqual(where(v.report.problems), ['vm/1/sda', 'vm/2/sda']);
        const packId = path.basename(pack1);
        for (const p of v.report.problems) assert.match(p.message, new RegExp(`^set vm generation ${p.generation} disk sda: .*${packId}`));
        // Generation 2's own index piece is in its own pack, so its problem is the chunks it shares with generation 1.
        assert.match(v.report.problems.find((p) => p.generation === 2)!.message, new RegExp(`chunks unreadable \\(first at offset \\d+: its pack ${packId} is missing\\)$`));
        assert.match(oneLine(v.r.stderr), /^vmbkp: error: verify of .* found 2 problems; first: set vm generation 1 disk sda: /);
      });

      it('verify still counts every generation and disk (two of them damaged)', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        assert.equal(v.report.generations, 3, `verify reports ${v.report.generations} generations`);
        assert.equal(v.report.disks, 3, `verify reports ${v.report.disks} disks`);
      });

      it('restore of an affected generation exits 5 naming the pack, and leaves no target', async () => {
        const target = file(`${kind}-restore-deleted.img`);
        const r = await restore(repo, 'vm', 2, target);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: restoring set vm generation 2 disk sda failed: the chunk at offset \\d+: pack ${path.basename(pack1)} is missing from the repository$`));
        assert.equal(r.exists, false);
      });
    });

    describe('a corrupted index file', () => {
      let repo: string;
      before(async () => {
        repo = await copy('corrupt-index');
        const st = await fs.stat(path.join(repo, index1));
        await flipByte(path.join(repo, index1), Math.floor(st.size / 2));
      });

      it('verify exits 5, names the index file, and the generations whose blobs it listed', async () => {
        const v = await verifyJson(repo, false);
        assert.equal(v.r.code, 5, v.r.stderr);
        const idx = v.report.problems.filter((p) => p.set === undefined);
        assert.equal(idx.length, 1, JSON.stringify(v.report.problems));
        assert.match(idx[0]!.message, new RegExp(`reading index file ${esc(index1)} failed: content does not match its name`));
        assert.deepEqual(where(v.report.problems), ['vm/1/sda', 'vm/2/sda']);
        assert.match(oneLine(v.r.stderr), new RegExp(`^vmbkp: error: verify of .* found 3 problems; first: reading index file ${esc(index1)} failed`));
      });

      it('restore exits 5 naming the index file, and leaves no target', async () => {
        const target = file(`${kind}-restore-index.img`);
        const r = await restore(repo, 'vm', 1, target);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: reading index file ${esc(index1)} failed: content does not match its name`));
        assert.equal(r.exists, false);
      });
    });

    describe('two blobs of equal length swapped inside a pack', () => {
      // Each blob's bytes are intact, only in the other's place, and nothing else is changed:
      // the digest (plaintext) or the associated data binding a sealed blob to its id
      // (encrypted) is what tells them apart. The blobs: chunks of random data (stored as
      // they are, so all of one length) of a set of their own, added to a copy.
      let repo: string;
      let pack: string;
      let swapped: [PackedBlob, PackedBlob];
      before(async () => {
        repo = await copy('swapped');
        const image = file(`${kind}-random.img`);
        await fs.writeFile(image, randomBytes(1 << 20));
        const packsBefore = new Set(await listFiles(path.join(repo, 'data')));
        const r = await vmbkp(['backup', '--repo', repo, '--set', 'random', `sda=file:${image}`]);
        assert.equal(r.code, 0, r.stderr);
        pack = path.join('data', (await listFiles(path.join(repo, 'data'))).find((p) => !packsBefore.has(p))!);
        const chunks = (await packEntries(await openTestRepository(repo), pack)).filter((e) => e.type === 0);
        assert.equal(chunks.length, 4);
        swapped = [chunks[0]!, chunks[3]!];
        assert.equal(swapped[0].length, swapped[1].length);
        const buf = await fs.readFile(path.join(repo, pack));
        const [a, b] = swapped;
        const first = Buffer.from(buf.subarray(a.offset, a.offset + a.length));
        buf.copy(buf, a.offset, b.offset, b.offset + b.length);
        first.copy(buf, b.offset);
        await fs.writeFile(path.join(repo, pack), buf);
      });
      const blob = () => `blob (${swapped[0].hex}|${swapped[1].hex}) in pack ${path.basename(pack)} is corrupt`;

      it('verify --read-data exits 5 and names the set, generation and disk', async () => {
        const v = await verifyJson(repo, true);
        assert.equal(v.r.code, 5, v.r.stderr);
        assert.deepEqual(where(v.report.problems), ['random/1/sda']);
        assert.match(v.report.problems[0]!.message, new RegExp(`^set random generation 1 disk sda: 2 chunks unreadable \\(first at offset 0: ${blob()}\\)$`));
      });

      it('restoring the generation exits 5 naming a swapped blob, and leaves no target', async () => {
        const target = file(`${kind}-restore-swapped.img`);
        const r = await restore(repo, 'random', 1, target);
        assert.equal(r.code, 5, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: restoring set random generation 1 disk sda failed: the chunk at offset \\d+: ${blob()}: `));
        assert.equal(r.exists, false);
      });
    });

    it('verify --json of the untouched template still reports no problem (the tests damaged copies only)', async () => {
      const v = await vmbkpJson<VerifyJson>(['verify', '--repo', template, '--read-data']);
      assert.deepEqual(v.problems, []);
    });
  });
});
