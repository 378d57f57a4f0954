/**
 * The commit lock: backups of one set that finish together get distinct generation numbers
 * even where a put of an existing name silently replaces it (a versioned S3 bucket, as
 * object lock makes it), and commit locks never get in the way of other locks.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RepositoryLockedError } from '../src/errors.js';
import { backupSet } from '../src/jobs/backup-set.js';
import { RepositoryLock } from '../src/repository/lock.js';
import { Repository } from '../src/repository/repository.js';
import { FileSource } from '../src/sources/file.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { overrideBackend } from './backend-override.js';
import { tempDir } from './helpers.js';
import { knownDisk } from './known-content.js';

/** A backend whose puts replace what is there, slowly for manifests: the worst case for two committers. */
function overwritingBackend(): { inner: MemoryBackend; backend: ReturnType<typeof overrideBackend> } {
  const inner = new MemoryBackend();
  const backend = overrideBackend(inner, {
    put: async (name, data) => {
      if (name.startsWith('generations/')) await sleep(30);
      await inner.remove(name);
      await inner.put(name, data);
    },
  });
  return { inner, backend };
}

describe('commit lock', () => {
  it('four backups of one set finishing together, through four repository handles: four generations, none lost', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const image = path.join(dir, 'disk.img');
      await fs.writeFile(image, knownDisk(4 * 1024 * 1024, 3).bytes);
      const { backend } = overwritingBackend();
      await Repository.init(backend);
      const ids = await Promise.all([1, 2, 3, 4].map(async () => {
        const repo = await Repository.open(backend); // one per "host"
        const source = await FileSource.open(image);
        try {
          return (await backupSet({ repo, set: 'web01', mode: 'full', disks: [{ name: 'sda', source }], workers: 1 })).id;
        } finally {
          await source.close();
        }
      }));
      const repo = await Repository.open(backend);
      const gens = await repo.listGenerations('web01');
      assert.deepEqual(gens.map((g) => g.generation), [1, 2, 3, 4]);
      const stored = await Promise.all(gens.map(async (g) => (await repo.readGeneration('web01', g.generation)).id));
      assert.deepEqual([...stored].sort(), [...ids].sort(), 'every backup\'s own manifest is there');
      assert.deepEqual(await backend.list('locks/'), [], 'every lock was released');
    } finally {
      await cleanup();
    }
  });

  it('conflicts only with a commit of the same set; waits for it, then takes it', async () => {
    const backend = new MemoryBackend();
    await Repository.init(backend);
    const repo = await Repository.open(backend);
    const shared = await RepositoryLock.acquire(repo, 'shared', 'backup of a');
    const first = await RepositoryLock.acquireCommit(repo, 'a');
    const other = await RepositoryLock.acquireCommit(repo, 'b');
    let waited = 0;
    const second = RepositoryLock.acquireCommit(repo, 'a', () => {}, async (ms) => {
      waited++;
      if (waited === 2) await first.release();
      await sleep(Math.min(ms, 5));
    });
    const got = await second;
    assert.ok(waited >= 2, 'the second commit of set a waited for the first');
    await assert.rejects(RepositoryLock.acquire(repo, 'exclusive', 'gc'), RepositoryLockedError, 'shared locks still exclude gc');
    await Promise.all([got.release(), other.release(), shared.release()]);
    const gcLock = await RepositoryLock.acquire(repo, 'exclusive', 'gc');
    await gcLock.release();
  });
});
