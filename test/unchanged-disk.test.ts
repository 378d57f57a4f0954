/**
 * An unchanged 1 TiB disk's new generation adds well under 1 MiB: the index is stored in
 * pieces that dedupe, so only the manifest is new. The disk is a DiskSource that reports
 * its allocation (as NBD and vSphere sources do), so the test reads only what holds data.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { it } from 'node:test';
import { backupSet } from '../src/jobs/backup-set.js';
import { kdfForMemory } from '../src/repository/keys.js';
import { Repository } from '../src/repository/repository.js';
import type { DiskSource, Extent } from '../src/sources/types.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir, treeSize } from './helpers.js';
import { openTestRepository, testPassword } from './repo-internals.js';

const TiB = 2 ** 40;

/** 1 TiB, data in a few extents (deterministic bytes), holes elsewhere. */
class SparseDisk implements DiskSource {
  readonly description = 'test:sparse-1TiB';
  readonly size = TiB;
  readonly extents: Extent[] = [0, 7, 300, 1023].map((g) => ({ start: g * 2 ** 30, length: 8 * 2 ** 20 }));
  bytesRead = 0;
  async allocated(): Promise<Extent[]> { return this.extents; }
  async changedSince(): Promise<Extent[]> { return []; }
  async changeToken(): Promise<string | undefined> { return 'token-1'; }
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.bytesRead += length;
    const buf = into ?? Buffer.alloc(length);
    buf.fill(0, 0, length);
    for (const e of this.extents) {
      const from = Math.max(offset, e.start);
      const to = Math.min(offset + length, e.start + e.length);
      for (let o = from - (from % 65536); o < to; o += 65536) {
        const block = createHash('sha256').update(`block ${o}`).digest();
        for (let k = Math.max(o, from); k < Math.min(o + 65536, to); k++) buf[k - offset] = block[(k - o) % 32]! ^ (k & 0xff);
      }
    }
    return buf;
  }
  async close(): Promise<void> {}
}

it('a new generation of an unchanged 1 TiB disk adds < 1 MiB', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    // Encrypted, as repositories are by default: index pieces dedupe by their keyed ids.
    const repo = await Repository.init(new LocalBackend(dir), { encryption: { password: await testPassword(), kdf: kdfForMemory(1) } });
    const disk = new SparseDisk();
    const first = await backupSet({ repo, set: 'big', mode: 'full', disks: [{ name: 'sda', source: disk }] });
    assert.equal(first.disks[0]!.mode, 'full');
    assert.equal(disk.bytesRead, 4 * 8 * 2 ** 20, 'only allocated extents are read');
    const sizeAfterFirst = await treeSize(dir);

    // The source reports no change since token-1: auto takes incr and reads nothing.
    const repo2 = await openTestRepository(dir);
    const second = await backupSet({ repo: repo2, set: 'big', mode: 'auto', disks: [{ name: 'sda', source: disk }] });
    assert.equal(second.disks[0]!.mode, 'incr');
    assert.equal(second.disks[0]!.stats.bytesRead, 0);
    const growth = (await treeSize(dir)) - sizeAfterFirst;
    assert.ok(growth < 2 ** 20, `second generation added ${growth} bytes`);
    assert.equal(second.disks[0]!.index.length, first.disks[0]!.index.length);
    assert.deepEqual(second.disks[0]!.index, first.disks[0]!.index, 'the same index pieces');
  } finally {
    await cleanup();
  }
});
