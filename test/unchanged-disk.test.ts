/**
 * An unchanged 1 TiB disk's new generation adds well under 1 MiB: the index is stored in
 * pieces that dedupe, so only the manifest is new. The disk is test/sparse-disk.ts's
 * synthetic 1 TiB source, which reports its allocation, so the test reads only what holds data.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { backupSet } from '../src/jobs/backup-set.js';
import { kdfForMemory } from '../src/repository/keys.js';
import { Repository } from '../src/repository/repository.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir, treeSize } from './helpers.js';
import { SparseDisk } from './sparse-disk.js';
import { openTestRepository, testPassword } from './repo-internals.js';

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
