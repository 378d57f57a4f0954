/**
 * Crash safety with real SIGKILL: a backup, a prune and a gc killed at each of their
 * failpoints (and a backup killed by the test mid-copy) leave a repository that verifies,
 * keeps every earlier generation restorable, accepts the next command despite the dead
 * process's lock, and is brought back by gc to what a repository that never crashed holds.
 * Against an encrypted and a plaintext repository; the images are made once for both.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLocks } from '../src/repository/lock.js';
import {
  type RunResult, type VerifyJson, listFiles, makeImage, mutateImage, sha256File, startVmbkp, tempDir, treeDigest, treeSize, verifyJson, vmbkp, vmbkpJson,
} from './helpers.js';
import { REPOSITORY_KINDS, initArgs, openTestRepository } from './repo-internals.js';

interface GcJson { packsRemoved: number; packsRepacked: number; packsWritten: number; blobsRemoved: number; bytesFreed: number; uploadsSwept: number }
interface ListJson { sets: { name: string; generations: { generation: number }[] }[] }
interface PruneJson { keep: { generation: number }[]; remove: number[] }

/** Generation numbers of a set, from list --json. */
async function generations(repo: string, set: string): Promise<number[]> {
  const list = await vmbkpJson<ListJson>(['list', '--repo', repo]);
  return list.sets.find((s) => s.name === set)?.generations.map((g) => g.generation) ?? [];
}

function assertClean(v: { r: RunResult; report: VerifyJson }, what: string): void {
  assert.equal(v.r.code, 0, `${what}: verify exited ${v.r.code}: ${v.r.stderr}`);
  assert.equal(v.report.ok, true, what);
  assert.deepEqual(v.report.problems, [], what);
}

/** Restores a generation to a new file and returns its sha256. */
async function restoredSha(repo: string, set: string, generation: number, out: string): Promise<string> {
  const r = await vmbkp(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', 'sda', '--to', `file:${out}`]);
  assert.equal(r.code, 0, `restore of ${set} generation ${generation}: ${r.stderr}`);
  const sha = await sha256File(out);
  await fs.rm(out);
  return sha;
}

/** Runs the CLI with a failpoint that kills it, and checks that it did. */
async function killedAt(failpoint: string, args: string[]): Promise<{ pid: number; result: RunResult }> {
  const c = startVmbkp(args, { env: { VMBKP_FAILPOINT: failpoint } });
  const result = await c.done;
  assert.equal(result.signal, 'SIGKILL',
    `VMBKP_FAILPOINT=${failpoint} should have killed vmbkp ${args[0]}; it exited with code ${result.code}\nstderr: ${result.stderr}\nstdout: ${result.stdout}`);
  return { pid: c.pid, result };
}

/** The locks in a repository, read as vmbkp reads them (sealed in an encrypted repository). */
async function locks(repo: string): Promise<{ operation: string; pid: number; kind: string }[]> {
  return (await readLocks(await openTestRepository(repo))).map((l) => {
    assert.ok(l.record, `lock ${l.name} is readable`);
    return l.record;
  });
}

/** Digests of the objects that must match between two repositories (everything but index files, locks and tmp). */
async function contentDigest(repo: string): Promise<Map<string, string>> {
  const d = await treeDigest(repo);
  for (const k of [...d.keys()]) if (!/^(config|data\/|generations\/)/.test(k)) d.delete(k);
  return d;
}

describe('crash safety with SIGKILL', () => {
  let imgDir: string;
  let cleanupImages: () => Promise<void>;
  const img = (name: string) => path.join(imgDir, name);
  const sha = new Map<string, string>();

  before(async () => {
    ({ dir: imgDir, cleanup: cleanupImages } = await tempDir('vmbkp-crash-images-'));
    await makeImage(img('a0.img'), '48M', 101);
    for (let n = 1; n <= 6; n++) await mutateImage(img(`a${n - 1}.img`), img(`a${n}.img`), img(`a${n}.json`), 6, 110 + n);
    await makeImage(img('b.img'), '48M', 102);
    await makeImage(img('db.img'), '32M', 103);
    await makeImage(img('big.img'), '256M', 104);
    for (let round = 1; round <= 4; round++) await makeImage(img(`extra${round}.img`), '2M', 600 + round);
    for (const name of ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'b', 'db', 'big']) sha.set(name, await sha256File(img(`${name}.img`)));
  });
  after(() => cleanupImages());

  for (const kind of REPOSITORY_KINDS) describe(`${kind} repository`, () => {
    const init = (repo: string) => vmbkp(['init', '--repo', repo, ...initArgs(kind)]);
    /**
     * Seven generations of set vm (a0…a6) and one of set db: the starting point of the prune
     * and gc tests. Many pruned generations give gc many partly dead packs to repack.
     */
    let sevenGenerations: string;
    /** sevenGenerations pruned to the newest two of vm: garbage for gc. */
    let pruned: string;

    before(async () => {
      sevenGenerations = path.join(imgDir, `seven-${kind}`);
      assert.equal((await init(sevenGenerations)).code, 0);
      const disk = img(`vm-disk-${kind}.img`);
      for (let n = 0; n <= 6; n++) {
        await fs.copyFile(img(`a${n}.img`), disk);
        const r = await vmbkp(['backup', '--repo', sevenGenerations, '--set', 'vm', ...(n === 0 ? [] : ['--changed', `sda=${img(`a${n}.json`)}`]), `sda=file:${disk}`]);
        assert.equal(r.code, 0, r.stderr);
      }
      await fs.rm(disk);
      const r = await vmbkp(['backup', '--repo', sevenGenerations, '--set', 'db', `sda=file:${img('db.img')}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await generations(sevenGenerations, 'vm'), [1, 2, 3, 4, 5, 6, 7]);

      pruned = path.join(imgDir, `pruned-${kind}`);
      await fs.cp(sevenGenerations, pruned, { recursive: true });
      const p = await vmbkp(['prune', '--repo', pruned, '--set', 'vm', '--keep-last', '2', '--no-gc']);
      assert.equal(p.code, 0, p.stderr);
      assert.deepEqual(await generations(pruned, 'vm'), [6, 7]);

      // The gc tests below are only meaningful if gc has dead blobs and partly dead packs to repack.
      const cleanGc = path.join(imgDir, `clean-gc-${kind}`);
      await fs.cp(pruned, cleanGc, { recursive: true });
      const cleanGcResult = await vmbkpJson<GcJson>(['gc', '--repo', cleanGc]);
      assert.ok(cleanGcResult.blobsRemoved > 0, JSON.stringify(cleanGcResult));
      assert.ok(cleanGcResult.packsRepacked > 0, `no pack to repack: ${JSON.stringify(cleanGcResult)}`);
      assertClean(await verifyJson(cleanGc, true), 'clean gc');
      await fs.rm(cleanGc, { recursive: true });
    });

    /**
     * One interrupted backup of image `image` into set vm (which holds generation 1 = a0),
     * then everything the repository must still do.
     */
    async function interruptedBackup(image: string, interrupt: (args: string[], repo: string) => Promise<{ pid: number; result: RunResult }>): Promise<void> {
      const { dir, cleanup } = await tempDir();
      try {
        const repo = path.join(dir, 'repo');
        assert.equal((await init(repo)).code, 0);
        const first = await vmbkp(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('a0.img')}`]);
        assert.equal(first.code, 0, first.stderr);
        // What the repository holds had the interrupted backup never run.
        const reference = path.join(dir, 'reference');
        await fs.cp(repo, reference, { recursive: true });
        const listBefore = await vmbkpJson<ListJson>(['list', '--repo', repo]);

        const args = ['backup', '--repo', repo, '--set', 'vm', '--mode', 'full', `sda=file:${img(`${image}.img`)}`];
        const { pid, result } = await interrupt(args, repo);
        assert.doesNotMatch(result.stdout, /generation 2/, 'the killed backup did not report a generation');
        assert.deepEqual((await locks(repo)).map((l) => [l.operation, l.pid]), [['backup of vm', pid]], 'the dead backup left its lock');

        // The repository verifies; the leftovers are unreferenced data, not problems.
        const v = await verifyJson(repo, true);
        assertClean(v, 'verify after the killed backup');
        assert.equal(v.report.generations, 1);
        assert.ok(v.report.unreferencedPacks + (v.report.unreferencedBlobs ?? 0) > 0,
          `the killed backup wrote data, which verify counts as unreferenced: ${JSON.stringify(v.report)}`);
        // No trace of the interrupted generation; generation 1 intact.
        assert.deepEqual(await vmbkpJson<ListJson>(['list', '--repo', repo]), listBefore);
        assert.equal(await restoredSha(repo, 'vm', 1, path.join(dir, 'r1.img')), sha.get('a0'));

        // gc clears the dead process's lock (with a warning) and reclaims what it wrote.
        const g = await vmbkp(['gc', '--repo', repo, '--json']);
        assert.equal(g.code, 0, g.stderr);
        assert.match(g.stderr, new RegExp(`^vmbkp: warning: removed stale lock of backup of vm \\(pid ${pid} on .*\\): that process is gone$`, 'm'));
        const gcResult = JSON.parse(g.stdout) as GcJson;
        assert.ok(gcResult.packsRemoved > 0, `gc removed the killed backup's packs: ${g.stdout}`);
        assert.ok(gcResult.bytesFreed > 0, g.stdout);
        const after = await verifyJson(repo, true);
        assertClean(after, 'verify after gc');
        assert.equal(after.report.unreferencedPacks, 0);
        assert.equal(after.report.unreferencedBlobs, 0);
        assert.deepEqual(await listFiles(path.join(repo, 'locks')), []);
        assert.deepEqual(await listFiles(path.join(repo, 'tmp')), [], 'interrupted uploads are swept');
        // Exactly what a repository that never saw the crash holds: same packs, same manifests.
        assert.deepEqual(await contentDigest(repo), await contentDigest(reference));
        const refReport = (await verifyJson(reference)).report;
        assert.equal(after.report.blobs, refReport.blobs);
        const [size, refSize] = [await treeSize(repo), await treeSize(reference)];
        assert.ok(Math.abs(size - refSize) <= 4096, `after gc the repository takes ${size} bytes, one that never crashed ${refSize}`);

        // The next backup of the set succeeds, takes the next number, and restores byte-identical.
        const next = await vmbkp(args);
        assert.equal(next.code, 0, next.stderr);
        assert.deepEqual(await generations(repo, 'vm'), [1, 2]);
        assert.equal(await restoredSha(repo, 'vm', 2, path.join(dir, 'r2.img')), sha.get(image));
        assert.equal(await restoredSha(repo, 'vm', 1, path.join(dir, 'r1.img')), sha.get('a0'));
        assertClean(await verifyJson(repo, true), 'verify after the next backup');
      } finally {
        await cleanup();
      }
    }

    for (const fp of ['flush:packs-written', 'backup:before-commit']) {
      it(`backup killed at ${fp}`, async () => {
        await interruptedBackup('b', (args) => killedAt(fp, args));
      });
    }

    it('a backup rerun straight after a crash succeeds beside the leftovers', async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const repo = path.join(dir, 'repo');
        assert.equal((await init(repo)).code, 0);
        const args = ['backup', '--repo', repo, '--set', 'vm', '--mode', 'full', `sda=file:${img('b.img')}`];
        await killedAt('flush:packs-written', args);
        const leftovers = await listFiles(path.join(repo, 'data'));
        assert.ok(leftovers.length > 0, 'the killed backup left packs');
        // The rerun writes the same blobs; in a plaintext repository a pack that comes out in the same
        // order has a leftover's name (sealed blobs differ by their nonces, so encrypted packs never do).
        const rerun = await vmbkp(args);
        assert.equal(rerun.code, 0, rerun.stderr);
        const after = await listFiles(path.join(repo, 'data'));
        for (const p of leftovers) assert.ok(after.includes(p), `leftover ${p} is still there (reused or garbage for gc)`);
        assert.equal(await restoredSha(repo, 'vm', 1, path.join(dir, 'r.img')), sha.get('b'));
        const v = await verifyJson(repo, true);
        assertClean(v, 'verify after the rerun');
        const gcResult = await vmbkpJson<GcJson>(['gc', '--repo', repo]);
        assert.equal(gcResult.packsRemoved, v.report.unreferencedPacks, 'gc removes exactly the leftovers the rerun did not reuse');
        assert.equal(await restoredSha(repo, 'vm', 1, path.join(dir, 'r.img')), sha.get('b'));
      } finally {
        await cleanup();
      }
    });

    it('backup killed by the test mid-copy', async () => {
      await interruptedBackup('big', async (args, repo) => {
        const data = path.join(repo, 'data');
        const packsBefore = new Set(await listFiles(data));
        const c = startVmbkp(args);
        let exited = false;
        void c.done.then(() => { exited = true; });
        // Kill it while it copies: once it has stored its first pack (a 256 MiB image makes several).
        while (!exited && (await listFiles(data)).every((f) => packsBefore.has(f))) await sleep(5);
        c.child.kill('SIGKILL');
        const result = await c.done;
        assert.equal(result.signal, 'SIGKILL', `the backup finished (exit ${result.code}) before the test could kill it: ${result.stderr}`);
        assert.equal(result.code, null);
        return { pid: c.pid, result };
      });
    });

    it('prune killed after removing one generation', async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const repo = path.join(dir, 'repo');
        await fs.cp(sevenGenerations, repo, { recursive: true });
        const { pid } = await killedAt('prune:removed-one', ['prune', '--repo', repo, '--set', 'vm', '--keep-last', '2', '--no-gc']);

        const left = await generations(repo, 'vm');
        assert.equal(left.length, 6, `exactly one generation was removed before the kill: ${left}`);
        const removed = [1, 2, 3, 4, 5, 6, 7].find((g) => !left.includes(g))!;
        assert.ok([1, 2, 3, 4, 5].includes(removed), `the removed generation ${removed} is one the policy removes`);
        assert.deepEqual(await generations(repo, 'db'), [1]);

        // The dead prune's exclusive lock does not block verify, which clears it with a warning.
        const v = await verifyJson(repo);
        assertClean(v, 'verify after the killed prune');
        assert.match(v.r.stderr, new RegExp(`^vmbkp: warning: removed stale lock of prune of vm \\(pid ${pid} on .*\\): that process is gone$`, 'm'));
        assert.equal(v.report.generations, 7, 'six of vm and one of db');
        assert.deepEqual(await listFiles(path.join(repo, 'locks')), []);

        // Running the prune again finishes the job.
        const again = await vmbkpJson<PruneJson>(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '2', '--no-gc']);
        assert.deepEqual([...again.remove].sort((a, b) => a - b), [1, 2, 3, 4, 5].filter((g) => g !== removed));
        assert.deepEqual(await generations(repo, 'vm'), [6, 7]);
        assert.deepEqual(await generations(repo, 'db'), [1]);
        // Identical to a prune that was never interrupted (but for the record the verify above left for `status`).
        const withoutRecords = async (r: string) => new Map([...await treeDigest(r)].filter(([k]) => !k.startsWith('records/')));
        assert.deepEqual(await withoutRecords(repo), await withoutRecords(pruned));

        const gcResult = await vmbkpJson<GcJson>(['gc', '--repo', repo]);
        assert.ok(gcResult.blobsRemoved > 0);
        const v2 = await verifyJson(repo, true);
        assertClean(v2, 'verify after gc');
        assert.equal(v2.report.unreferencedBlobs, 0);
        assert.equal(v2.report.unreferencedPacks, 0);
        assert.equal(await restoredSha(repo, 'vm', 6, path.join(dir, 'r.img')), sha.get('a5'));
        assert.equal(await restoredSha(repo, 'vm', 7, path.join(dir, 'r.img')), sha.get('a6'));
      } finally {
        await cleanup();
      }
    });

    /**
     * gc killed at `fp` in a copy of the pruned repository (plus, when `extra` is given, one
     * small set of its own), then everything the repository must still do.
     */
    async function interruptedGc(fp: string, extra?: string): Promise<void> {
      const { dir, cleanup } = await tempDir();
      try {
        const repo = path.join(dir, 'repo');
        await fs.cp(pruned, repo, { recursive: true });
        if (extra) {
          const r = await vmbkp(['backup', '--repo', repo, '--set', 'extra', `sda=file:${img(`${extra}.img`)}`]);
          assert.equal(r.code, 0, r.stderr);
        }
        // The same repository after a gc that is not interrupted: what the interrupted one must end up as.
        const reference = path.join(dir, 'reference');
        await fs.cp(repo, reference, { recursive: true });
        const refGc = await vmbkp(['gc', '--repo', reference]);
        assert.equal(refGc.code, 0, refGc.stderr);

        const objects = async () => [...await listFiles(path.join(repo, 'data')), ...await listFiles(path.join(repo, 'index'))];
        const before = await objects();
        const { pid } = await killedAt(fp, ['gc', '--repo', repo]);
        assert.notDeepEqual(await objects(), before, 'the killed gc had written or removed packs or index files');

        // Every remaining generation reads back whole: verify --read-data, then restores.
        const v = await verifyJson(repo, true);
        assertClean(v, `verify --read-data after gc killed at ${fp}`);
        assert.match(v.r.stderr, new RegExp(`^vmbkp: warning: removed stale lock of gc \\(pid ${pid} on .*\\): that process is gone$`, 'm'));
        assert.equal(v.report.generations, extra ? 4 : 3);
        assert.equal(await restoredSha(repo, 'vm', 6, path.join(dir, 'r.img')), sha.get('a5'));
        assert.equal(await restoredSha(repo, 'vm', 7, path.join(dir, 'r.img')), sha.get('a6'));
        assert.equal(await restoredSha(repo, 'db', 1, path.join(dir, 'r.img')), sha.get('db'));

        // A second gc completes and leaves nothing unreferenced.
        const g = await vmbkpJson<GcJson>(['gc', '--repo', repo]);
        assert.ok(g.packsRemoved + g.blobsRemoved > 0, `the second gc had leftovers to remove: ${JSON.stringify(g)}`);
        const v2 = await verifyJson(repo, true);
        assertClean(v2, 'verify --read-data after the second gc');
        assert.equal(v2.report.unreferencedPacks, 0);
        assert.equal(v2.report.unreferencedBlobs, 0);
        assert.deepEqual(await listFiles(path.join(repo, 'locks')), []);
        assert.deepEqual(await listFiles(path.join(repo, 'tmp')), []);
        assert.equal(await restoredSha(repo, 'vm', 7, path.join(dir, 'r.img')), sha.get('a6'));

        // The same generations and blobs as after the gc that was not interrupted, in about the same space.
        const clean = (await verifyJson(reference)).report;
        assert.equal(v2.report.blobs, clean.blobs);
        const gens = async (r: string) => [...(await treeDigest(r))].filter(([k]) => k.startsWith('generations/'));
        assert.deepEqual(await gens(repo), await gens(reference));
        const [size, cleanSize] = [await treeSize(repo), await treeSize(reference)];
        assert.ok(Math.abs(size - cleanSize) <= cleanSize * 0.01,
          `after the second gc the repository takes ${size} bytes; an uninterrupted gc left ${cleanSize}`);
      } finally {
        await cleanup();
      }
    }

    it('gc killed at gc:packs-written', async () => {
      await interruptedGc('gc:packs-written');
    });

    it('gc killed at gc:index-written', async () => {
      // After this kill the old index files and gc's new one all exist, and what the next gc
      // sees depends on which of them the directory lists first. Their names are content
      // hashes, so each round adds a small set of its own: the new index gets another name.
      // Two rounds per kind of repository, four names in all (sealed index files are named
      // by their random nonces too).
      const rounds = kind === 'encrypted' ? [1, 2] : [3, 4];
      for (const round of rounds) await interruptedGc('gc:index-written', `extra${round}`);
    });

    it('gc killed at gc:indexes-removed', async () => {
      await interruptedGc('gc:indexes-removed');
    });

    it('the lock of a killed prune does not block the next backup', async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const repo = path.join(dir, 'repo');
        await fs.cp(sevenGenerations, repo, { recursive: true });
        const before = await generations(repo, 'vm');
        const { pid } = await killedAt('prune:locked', ['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1']);
        assert.deepEqual(await generations(repo, 'vm'), before, 'killed before it removed anything');
        assert.deepEqual((await locks(repo)).map((l) => [l.kind, l.operation, l.pid]), [['exclusive', 'prune of vm', pid]]);

        const r = await vmbkp(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('a6.img')}`]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`^vmbkp: warning: removed stale lock of prune of vm \\(pid ${pid} on .*\\): that process is gone$`, 'm'));
        assert.deepEqual(await generations(repo, 'vm'), [...before, 8]);
        assert.deepEqual(await listFiles(path.join(repo, 'locks')), []);
      } finally {
        await cleanup();
      }
    });
  });
});
