/** Restores one disk of a generation to a target, under a shared lock. */
import { restoreDisk } from '../engine/restore-disk.js';
import type { Progress } from '../engine/backup-disk.js';
import { openDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import type { DiskTarget } from '../sources/types.js';
import { findDisk, resolveGeneration } from './resolve.js';

export interface RestoreDiskJob {
  readonly repo: Repository;
  readonly set: string;
  readonly generation: string;
  readonly disk: string;
  /** Opens the target once the disk's size is known. */
  readonly openTarget: (size: number) => Promise<DiskTarget>;
  readonly workers?: number;
  readonly onProgress?: (p: Progress) => void;
  readonly onWarning?: (message: string) => void;
}

export interface RestoreDiskResult {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly size: number;
  readonly bytesWritten: number;
  readonly target: string;
  readonly durationMs: number;
}

export async function restoreDiskJob(job: RestoreDiskJob): Promise<RestoreDiskResult> {
  const t0 = performance.now();
  const lock = await RepositoryLock.acquire(job.repo, 'shared', `restore of ${job.set}`, job.onWarning);
  try {
    const manifest = await resolveGeneration(job.repo, job.set, job.generation);
    const record = findDisk(manifest, job.disk);
    const what = `set ${manifest.set} generation ${manifest.generation} disk ${record.name}`;
    await job.repo.loadIndex();
    // Opened, not read: restoreDisk reads it piece by piece.
    const index = await openDiskIndex(job.repo, record, `restoring ${what}`);
    const target = await job.openTarget(record.size);
    const workers = job.repo.acquirePool(job.workers);
    const pool = workers.pool;
    try {
      const { bytesWritten } = await restoreDisk({ repo: job.repo, pool, index, target, what, ...(job.onProgress ? { onProgress: job.onProgress } : {}) });
      await target.close();
      return {
        set: manifest.set, generation: manifest.generation, disk: record.name, size: record.size,
        bytesWritten, target: target.description, durationMs: Math.round(performance.now() - t0),
      };
    } catch (err) {
      // Never leave a partly restored image that looks whole.
      if (target.discard) await target.discard().catch(() => {});
      else await target.close().catch(() => {});
      throw err;
    } finally {
      await workers.release();
    }
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}
