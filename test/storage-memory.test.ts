import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { backupSet } from '../src/jobs/backup-set.js';
import { restoreDiskJob } from '../src/jobs/restore-disk-job.js';
import { Repository } from '../src/repository/repository.js';
import { FileSource, FileTarget } from '../src/sources/file.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { tempDir } from './helpers.js';
import { knownDisk } from './known-content.js';
import { storageConformance } from './storage-conformance.js';

storageConformance('in memory', async () => ({ backend: new MemoryBackend(), cleanup: async () => {} }));

it('a repository in memory: a disk backed up twice, in process, restores to the same bytes', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const disk = knownDisk(6 * 1024 * 1024 + 2560, 5).bytes;
    const image = path.join(dir, 'disk.img');
    await fs.writeFile(image, disk);
    const backend = new MemoryBackend();
    await Repository.init(backend);
    const repo = await Repository.open(backend);
    for (const mode of ['full', 'diff'] as const) {
      const source = await FileSource.open(image);
      try {
        await backupSet({ repo, set: 'mem', mode, disks: [{ name: 'd', source }], workers: 1 });
      } finally {
        await source.close();
      }
    }
    assert.ok((await backend.list('data/')).length > 0, 'the packs are in the in-memory backend');
    const out = path.join(dir, 'restored.img');
    const result = await restoreDiskJob({ repo, set: 'mem', generation: '2', disk: 'd', workers: 1, openTarget: (size) => FileTarget.create(out, size, false) });
    assert.equal(result.generation, 2);
    assert.ok((await fs.readFile(out)).equals(disk), 'the restored disk equals the backed up one');
  } finally {
    await cleanup();
  }
});
