/**
 * A Repository object that lives in a long-running process (a server, a recipe batch):
 * it sees gc rewrite the index under it, and a failed upload fails the job it belongs to,
 * not the instance for good.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IoError } from '../src/errors.js';
import { restoreDiskJob } from '../src/jobs/restore-disk-job.js';
import { DATA_PREFIX } from '../src/repository/layout.js';
import { BlobType } from '../src/repository/pack.js';
import { Repository } from '../src/repository/repository.js';
import { FileTarget } from '../src/sources/file.js';
import { LocalBackend } from '../src/storage/local.js';
import { overrideBackend } from './backend-override.js';
import { sha256File, tempDir, vmbkp } from './helpers.js';
import { openTestRepository } from './repo-internals.js';

describe('a repository object in a long-running process', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => { ({ dir, cleanup } = await tempDir()); });
  after(() => cleanup());

  async function cli(args: string[]): Promise<void> {
    const r = await vmbkp(args);
    assert.equal(r.code, 0, `vmbkp ${args.join(' ')}: ${r.stderr}`);
  }

  it('sees the index another process rewrote (prune + gc) and restores from the packs gc wrote', async () => {
    const repoDir = path.join(dir, 'repo-gc');
    const image = path.join(dir, 'gc.img');
    const data = randomBytes(6 << 20);
    await fs.writeFile(image, data);
    await cli(['init', '--repo', repoDir]);
    await cli(['backup', '--repo', repoDir, '--set', 'vm', `sda=file:${image}`]);
    // Generation 2 changes half the chunks: gc must copy the live half out of generation 1's pack.
    randomBytes(3 << 20).copy(data, 0);
    await fs.writeFile(image, data);
    await cli(['backup', '--repo', repoDir, '--set', 'vm', `sda=file:${image}`]);
    const want = await sha256File(image);

    const backend = new LocalBackend(repoDir);
    const repo = await openTestRepository(backend);
    await repo.loadIndex();
    const packsBefore = new Set(await backend.list(DATA_PREFIX));

    await cli(['prune', '--repo', repoDir, '--set', 'vm', '--keep-last', '1']);
    await cli(['gc', '--repo', repoDir]);
    const packsAfter = new Set(await backend.list(DATA_PREFIX));
    assert.ok([...packsBefore].some((p) => !packsAfter.has(p)), 'gc removed a pack this process had indexed');

    const target = path.join(dir, 'gc-restored.img');
    await restoreDiskJob({ repo, set: 'vm', generation: 'latest', disk: 'sda', workers: 1, openTarget: (size) => FileTarget.create(target, size, false) });
    assert.equal(await sha256File(target), want);
  });

  it('a failed pack upload fails the job whose blobs it held; the next job stores them again', async () => {
    const repoDir = path.join(dir, 'repo-put');
    await cli(['init', '--repo', repoDir]);
    const inner = new LocalBackend(repoDir);
    let failPuts = 1;
    const backend = overrideBackend(inner, {
      put: (name, data) => (name.startsWith(DATA_PREFIX) && failPuts-- > 0
        ? Promise.reject(new IoError(`storing ${name} failed: ECONNRESET`)) : inner.put(name, data)),
    });
    const repo = await openTestRepository(backend);
    await repo.loadIndex();
    const { codec } = repo;
    const blobs = [randomBytes(4096), randomBytes(8192)];
    const store = (w: ReturnType<Repository['writer']>) => {
      for (const b of blobs) w.addBlob(codec.id(b), BlobType.Chunk, codec.encode(codec.id(b), BlobType.Chunk, b), b.length);
    };

    const first = repo.writer();
    store(first);
    await assert.rejects(first.flush(), /storing data\/.* failed: ECONNRESET/);

    const second = repo.writer();
    store(second);
    await second.flush();
    for (const b of blobs) assert.deepEqual(await repo.readBlob(codec.id(b).toString('hex'), 'test'), b);

    // And another process finds them too.
    const fresh = await openTestRepository(inner);
    await fresh.loadIndex();
    for (const b of blobs) assert.deepEqual(await fresh.readBlob(codec.id(b).toString('hex'), 'test'), b);
  });

  it('the jobs of one process share one chunk pool, which stops with its last user', async () => {
    const repoDir = path.join(dir, 'repo-pool');
    await cli(['init', '--repo', repoDir]);
    const repo = await openTestRepository(repoDir);
    const a = repo.acquirePool(2);
    const b = repo.acquirePool(4);
    assert.equal(a.pool, b.pool, 'one pool for both jobs');
    assert.equal(a.pool.size, 2, 'the first lease sets the size');
    await a.release();
    await a.release(); // a second release of one lease changes nothing
    // b still works with it: hashing a zero chunk gives the zero digest.
    const slots = await b.pool.createSlots(1, { input: 4096, output: 4096, digests: 32 });
    const slot = await slots.acquire();
    slot.input.fill(0);
    slot.digests.fill(1);
    await b.pool.hash(slot, 4096, 4096);
    assert.ok(slot.digests.equals(Buffer.alloc(32)));
    await b.pool.disposeSlots(slots);
    await b.release();
    const c = repo.acquirePool(1);
    assert.notEqual(c.pool, a.pool, 'a new pool once the last user let go');
    await c.release();
  });
});
