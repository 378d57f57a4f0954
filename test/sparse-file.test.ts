/**
 * Hole-aware reads of `file:` disks (SEEK_DATA/SEEK_HOLE through build/seek.node): the
 * source reports exactly the data extents, block-granular; a full backup reads only them;
 * the fallback without the addon (VMBKP_NATIVE_SEEK=0) backs up the same; a restore stays sparse.
 */
import assert from 'node:assert/strict';
import { existsSync, statfsSync } from 'node:fs';
import { open, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileSource } from '../src/sources/file.js';
import type { Extent } from '../src/sources/types.js';
import { ROOT, sha256File, tempDir, vmbkp } from './helpers.js';
import { initArgs } from './repo-internals.js';

const MiB = 1024 * 1024;

async function makeSparse(file: string, size: number, writes: readonly { at: number; length: number }[]): Promise<void> {
  await writeFile(file, '');
  await truncate(file, size);
  const fh = await open(file, 'r+');
  try {
    for (const w of writes) {
      const b = Buffer.alloc(w.length);
      for (let i = 0; i < b.length; i++) b[i] = 1 + ((w.at + i) % 251);
      await fh.write(b, 0, b.length, w.at);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function allocatedOf(file: string): Promise<Extent[]> {
  const src = await FileSource.open(file);
  try {
    return await src.allocated(0, src.size);
  } finally {
    await src.close();
  }
}

describe('sparse file: sources', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let bs: number;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    bs = statfsSync(dir).bsize;
    // Without hole support in the test's filesystem nothing here could tell holes from data.
    await makeSparse(path.join(dir, 'probe'), 64 * MiB, [{ at: 32 * MiB, length: 4096 }]);
    assert.ok((await stat(path.join(dir, 'probe'))).blocks * 512 < MiB, `the filesystem of ${dir} must support holes`);
    assert.ok(existsSync(path.join(ROOT, 'build/seek.node')), 'build/seek.node must be built (npm run build)');
  });
  after(() => cleanup());

  it('reports exactly the data extents, rounded out to filesystem blocks', async () => {
    const file = path.join(dir, 'sparse.img');
    const size = 64 * MiB + 1000;
    await makeSparse(file, size, [
      { at: 0, length: 4096 },
      { at: MiB + 100, length: 5000 },
      { at: 40 * MiB, length: 300 * 1024 },
      { at: size - 10, length: 10 },
    ]);
    const down = (n: number) => Math.floor(n / bs) * bs;
    const up = (n: number) => Math.ceil(n / bs) * bs;
    assert.deepEqual(await allocatedOf(file), [
      { start: 0, length: up(4096) },
      { start: down(MiB + 100), length: up(MiB + 5100) - down(MiB + 100) },
      { start: 40 * MiB, length: up(300 * 1024) },
      { start: down(size - 10), length: size - down(size - 10) },
    ]);
  });

  it('reports a file without holes as one extent, and a file that is all hole as none', async () => {
    const full = path.join(dir, 'full.img');
    await makeSparse(full, 3 * MiB, [{ at: 0, length: 3 * MiB }]);
    assert.deepEqual(await allocatedOf(full), [{ start: 0, length: 3 * MiB }]);
    const hole = path.join(dir, 'hole.img');
    await makeSparse(hole, 16 * MiB, []);
    assert.deepEqual(await allocatedOf(hole), []);
  });
});

describe('sparse file: backup and restore', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let disk: string;
  let repo: string;
  let allocatedBytes: number;
  const SIZE = 64 * MiB;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    disk = path.join(dir, 'disk.img');
    repo = path.join(dir, 'repo');
    // Data in three places, one extent crossing a chunk boundary, one not chunk-aligned.
    await makeSparse(disk, SIZE, [{ at: 3 * MiB, length: MiB }, { at: 40 * MiB - 8192, length: 64 * 1024 }, { at: 60 * MiB + 4096, length: 12288 }]);
    allocatedBytes = (await allocatedOf(disk)).reduce((n, e) => n + e.length, 0);
    assert.equal((await vmbkp(['init', '--repo', repo, ...initArgs('encrypted')])).code, 0);
  });
  after(() => cleanup());

  interface Manifest { disks: { bytesRead: number; bytesStored: number; chunksStored: number; chunksZero: number }[] }
  const backup = async (set: string, env?: NodeJS.ProcessEnv): Promise<{ m: Manifest; stderr: string }> => {
    // Both sets into one repository: the second stores nothing when its backup is the same.
    const r = await vmbkp(['backup', '--repo', repo, '--set', set, '--mode', 'full', '--json', `sda=file:${disk}`], env ? { env } : {});
    assert.equal(r.code, 0, r.stderr);
    return { m: JSON.parse(r.stdout) as Manifest, stderr: r.stderr };
  };

  it('a full backup reads the allocated bytes only; without the addon it reads everything, warns, and stores the same index', async () => {
    const hole = (await backup('native')).m.disks[0]!;
    assert.equal(hole.bytesRead, allocatedBytes);
    assert.ok(allocatedBytes < 2 * MiB);
    assert.ok(hole.chunksStored > 0 && hole.chunksZero > 0);
    const fallback = await backup('fallback', { VMBKP_NATIVE_SEEK: '0' });
    const whole = fallback.m.disks[0]!;
    assert.equal(whole.bytesRead, SIZE);
    assert.equal(fallback.stderr.match(/hole detection is unavailable/g)?.length, 1, fallback.stderr);
    // The same chunks and the same index pieces: nothing new to store.
    assert.equal(whole.chunksStored, 0);
    assert.equal(whole.bytesStored, 0);
    assert.equal(whole.chunksZero, hole.chunksZero);
  });

  it('a restore gives the same bytes and stays sparse', async () => {
    const to = path.join(dir, 'restored.img');
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'native', '--disk', 'sda', '--to', `file:${to}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(to), await sha256File(disk));
    assert.ok((await stat(to)).blocks * 512 <= allocatedBytes + 2 * MiB, `restored file allocates ${(await stat(to)).blocks * 512} bytes`);
    assert.deepEqual(await allocatedOf(to), await allocatedOf(disk));
  });
});
