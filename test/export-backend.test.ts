/**
 * The ExportBackend conformance suite against both exports `vmbkp serve` uses: a generation
 * of a real repository (backed up by the CLI), and the write overlay on top of it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { GenerationExport } from '../src/engine/generation-export.js';
import { OverlayExport } from '../src/engine/overlay-export.js';
import { ChunkPool } from '../src/repository/chunk-pool.js';
import { type DiskIndex, loadDiskIndex } from '../src/repository/disk-index.js';
import { Repository } from '../src/repository/repository.js';
import { exportBackendConformance } from './export-backend-conformance.js';
import { tempDir, vmbkp } from './helpers.js';
import { openTestRepository } from './repo-internals.js';
import { knownDisk } from './known-content.js';

const disk = knownDisk(6 * 1024 * 1024 + 2560, 23);

interface Backed { readonly repo: Repository; readonly index: DiskIndex; readonly pool: ChunkPool; readonly dir: string }
let backed: Promise<Backed> | undefined;
const cleanups: (() => Promise<void>)[] = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

/** One backup of the known disk, made once for every export of this file. */
function backedUp(): Promise<Backed> {
  backed ??= (async () => {
    const { dir, cleanup } = await tempDir('vmbkp-export-');
    cleanups.push(cleanup);
    const image = path.join(dir, 'disk.img');
    const repoDir = path.join(dir, 'repo');
    await fs.writeFile(image, disk.bytes);
    for (const args of [['init', '--repo', repoDir], ['backup', '--repo', repoDir, '--set', 's', `d=file:${image}`]]) {
      const r = await vmbkp(args);
      if (r.code !== 0) throw new Error(`vmbkp ${args[0]} failed: ${r.stderr}`);
    }
    const repo = await openTestRepository(repoDir);
    await repo.loadIndex();
    const manifest = await repo.readGeneration('s', 1);
    const index = await loadDiskIndex(repo, manifest.disks[0]!, 'test');
    const pool = new ChunkPool(2, repo.codecSpec);
    cleanups.push(() => pool.close());
    return { repo, index, pool, dir };
  })();
  return backed;
}

const options = { content: disk.bytes, holes: disk.holes };

exportBackendConformance('generation export (worker pool)', { ...options, writable: false }, async () => {
  const { repo, index, pool } = await backedUp();
  const e = await GenerationExport.open({ repo, index, pool, what: 'set s generation 1 disk d' });
  return { backend: e, cleanup: () => e.close() };
});

exportBackendConformance('generation export (main thread)', { ...options, writable: false }, async () => {
  const { repo, index } = await backedUp();
  const e = await GenerationExport.open({ repo, index, what: 'set s generation 1 disk d' });
  return { backend: e, cleanup: () => e.close() };
});

exportBackendConformance('write overlay on a generation export', { ...options, writable: true }, async () => {
  const { repo, index, pool, dir } = await backedUp();
  const base = await GenerationExport.open({ repo, index, pool, what: 'set s generation 1 disk d' });
  const overlay = await OverlayExport.create(base, dir);
  return { backend: overlay, cleanup: async () => { await overlay.close(); await base.close(); } };
});
