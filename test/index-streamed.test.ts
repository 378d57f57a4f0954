/**
 * The disk index is streamed: an incr of a 1 TiB disk reads only the index pieces its
 * changes touch and keeps none of them once stored; the zero count and the pieces it writes
 * are what a diff (which reads the whole disk) finds; a restore reads the index one piece
 * at a time. The disk is test/sparse-disk.ts's synthetic 1 TiB source.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { backupSet } from '../src/jobs/backup-set.js';
import { restoreDiskJob } from '../src/jobs/restore-disk-job.js';
import { kdfForMemory } from '../src/repository/keys.js';
import { Repository } from '../src/repository/repository.js';
import type { DiskTarget } from '../src/sources/types.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir } from './helpers.js';
import { SparseDisk } from './sparse-disk.js';
import { openTestRepository, testPassword } from './repo-internals.js';

const TiB = 2 ** 40;
const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Generation 1 rewrites the first MiB of the extent at 300 GiB, generation 2 that at 7 GiB. */
const rewritten = (o: number, generation: number): number =>
  generation >= 1 && o >= 300 * GiB && o < 300 * GiB + MiB ? 1 : generation >= 2 && o >= 7 * GiB && o < 7 * GiB + MiB ? 2 : 0;

/** Index pieces a repository reads (blobs read through readBlob: only index pieces and machine files go that way). */
function countReads(repo: Repository): { n: number } {
  const count = { n: 0 };
  const read = repo.readBlob.bind(repo);
  repo.readBlob = async (hex: string, what: string) => { count.n++; return read(hex, what); };
  return count;
}

it('an incr of a 1 TiB disk reads only the index pieces it changes, and writes what a diff finds', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const repo = await Repository.init(new LocalBackend(dir), { encryption: { password: await testPassword(), kdf: kdfForMemory(1) } });
    const disk = new SparseDisk(rewritten);
    const full = await backupSet({ repo, set: 'big', mode: 'full', disks: [{ name: 'sda', source: disk }] });
    const chunks = full.disks[0]!.stats.chunks;
    const dataChunks = 4 * 8 * MiB / repo.config.chunkSize;
    assert.equal(full.disks[0]!.stats.chunksZero, chunks - dataChunks);

    disk.generation = 1;
    disk.changed = [{ start: 300 * GiB, length: MiB }];
    const repo2 = await openTestRepository(dir);
    const reads = countReads(repo2);
    const incr = await backupSet({ repo: repo2, set: 'big', mode: 'incr', disks: [{ name: 'sda', source: disk }] });
    assert.equal(incr.disks[0]!.mode, 'incr');
    assert.equal(reads.n, 1, 'one index piece read: the one the change touches');
    assert.equal(incr.disks[0]!.stats.chunksZero, chunks - dataChunks);
    const changedPiece = Math.floor(300 * GiB / repo.config.chunkSize / repo.config.indexPieceEntries);
    full.disks[0]!.index.forEach((id, p) => {
      if (p === changedPiece) assert.notEqual(incr.disks[0]!.index[p], id);
      else assert.equal(incr.disks[0]!.index[p], id, `piece ${p} unchanged`);
    });

    // A diff reads the whole disk and compares: the same pieces.
    const repo3 = await openTestRepository(dir);
    const diff = await backupSet({ repo: repo3, set: 'big', mode: 'diff', disks: [{ name: 'sda', source: disk }] });
    assert.equal(diff.disks[0]!.mode, 'diff');
    assert.deepEqual(diff.disks[0]!.index, incr.disks[0]!.index);
    assert.equal(diff.disks[0]!.stats.chunksZero, chunks - dataChunks);
    assert.equal(diff.disks[0]!.stats.chunksStored, 0);

    // A periodic full read (a diff checking the changes the source reports) finds the MiB it did not report.
    disk.generation = 2;
    disk.changed = [];
    const periodic = await backupSet({ repo: await openTestRepository(dir), set: 'big', mode: 'auto', diffEvery: 1, disks: [{ name: 'sda', source: disk }] });
    assert.equal(periodic.disks[0]!.mode, 'diff');
    assert.equal(periodic.disks[0]!.cbtMissedBytes, MiB);
    assert.equal(periodic.disks[0]!.stats.chunksZero, chunks - dataChunks);

    // A restore reads every distinct piece once: the zero piece once, then each data piece.
    const repo4 = await openTestRepository(dir);
    const restoreReads = countReads(repo4);
    const written = new Map<number, number>();
    const target: DiskTarget = {
      description: 'test:target', size: TiB, zeroed: true,
      async write(offset, data) { written.set(offset, data.length); },
      async zero() { throw new Error('a zeroed target gets no zero writes'); },
      async flush() {}, async close() {},
    };
    const r = await restoreDiskJob({ repo: repo4, set: 'big', generation: 'latest', disk: 'sda', openTarget: async () => target });
    assert.equal(r.bytesWritten, 4 * 8 * MiB);
    assert.equal(restoreReads.n, 1 + 4, 'the zero piece once and the four pieces with data');
  } finally {
    await cleanup();
  }
});
