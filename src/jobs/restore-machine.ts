/**
 * A machine backup restored as a machine, through its provider, under a shared lock: the
 * generation resolved, its stored machine checked, every disk's index loaded (so a
 * missing piece fails before anything is made), then the provider makes the machine (or
 * takes one) and opens its disks, and this job writes each disk from the repository and
 * reads it back against the generation's digests — for every kind of machine alike. The
 * repository's chunk workers are leased only once a disk is written.
 */
import { RepositoryDamagedError, checkInterrupted } from '../errors.js';
import { mapConcurrently } from '../concurrency.js';
import type { Progress } from '../engine/backup-disk.js';
import { restoreDisk } from '../engine/restore-disk.js';
import { restoreDiskInOrder } from '../engine/restore-ordered.js';
import { dataBytes, interruptible } from '../engine/restore-target.js';
import { verifyWritten } from '../engine/verify-written.js';
import { type DiskIndex, loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { PoolLease, Repository } from '../repository/repository.js';
import type {
  DiskToRestore, MachineRestoreContext, MachineRestoreRequest, RestoreProvider, RestoredMachine, WrittenDisk,
} from '../providers/machine-provider.js';
import { type StoredMachine, storedMachine } from '../providers/stored-machine.js';
import { resolveGeneration } from './resolve.js';

export interface MachineRestoreJob<R extends MachineRestoreRequest, Result extends RestoredMachine> {
  readonly repo: Repository;
  readonly provider: RestoreProvider<R, Result>;
  readonly set: string;
  /** A generation number, or "latest". */
  readonly generation: string;
  readonly request: R;
  readonly workers?: number | undefined;
}

export type MachineRestoreResult<Result> = Result & { readonly set: string; readonly generation: number; readonly durationMs: number };

export async function restoreMachine<R extends MachineRestoreRequest, Result extends RestoredMachine>(
  job: MachineRestoreJob<R, Result>): Promise<MachineRestoreResult<Result>> {
  const t0 = performance.now();
  const { repo } = job;
  const warn = (message: string) => job.request.onEvent?.({ type: 'warning', message });
  const lock = await RepositoryLock.acquire(repo, 'shared', `restore of ${job.set}`, warn);
  let workers: PoolLease | undefined;
  try {
    const manifest = await resolveGeneration(repo, job.set, job.generation);
    const machine = storedMachine(manifest);
    const gen = `set ${manifest.set} generation ${manifest.generation}`;
    for (const d of machine.disks.filter((x) => x.skipped)) {
      warn(`disk ${d.key} (${d.label}) of ${gen} was not backed up (${d.skipped}): the restored VM does not get it`);
    }
    await repo.loadIndex();
    const disks: { stored: StoredMachine['disks'][number]; index: DiskIndex }[] = [];
    for (const stored of machine.disks.filter((x) => !x.skipped)) {
      const record = manifest.disks.find((r) => r.name === stored.name);
      if (!record) throw new RepositoryDamagedError(`${gen} describes disk ${stored.name} of the VM but holds no such disk`);
      if (record.size !== stored.capacity) throw new RepositoryDamagedError(`${gen}: disk ${stored.name} holds ${record.size} bytes, the VM's disk has ${stored.capacity}`);
      disks.push({ stored, index: await loadDiskIndex(repo, record, `restoring ${gen} disk ${stored.name}`) });
    }
    const ctx: MachineRestoreContext = {
      repo, manifest, machine, gen, disks,
      get pool() { return (workers ??= repo.acquirePool(job.workers)).pool; },
    };
    const outcome = await restoreOnto(job.provider, ctx, job.request);
    return { ...outcome, set: manifest.set, generation: manifest.generation, durationMs: Math.round(performance.now() - t0) };
  } finally {
    try {
      await workers?.release();
    } finally {
      await lock.release();
    }
  }
}

/**
 * The part every kind of machine shares, once the generation and its indexes are loaded:
 * the provider prepares the machine; every disk is written and checked,
 * `request.diskConcurrency` at once; the machine is completed and finished — or, on any
 * failure before it is complete, abandoned (a machine the restore created is destroyed).
 */
export async function restoreOnto<R extends MachineRestoreRequest, Result extends RestoredMachine>(
  provider: RestoreProvider<R, Result>, ctx: MachineRestoreContext, request: R): Promise<Result> {
  const machine = await provider.prepareRestore(ctx, request);
  let written: WrittenDisk[];
  try {
    if (machine.disks.length !== ctx.disks.length) throw new TypeError(`the provider opened ${machine.disks.length} disks for the ${ctx.disks.length} of ${ctx.gen}`);
    written = await writeDisks(ctx, machine.disks, request);
    await machine.complete();
  } catch (err) {
    throw await machine.abandon(err);
  }
  return machine.finish(written);
}

/**
 * Writes and checks every disk, `request.diskConcurrency` at once; results in the order of
 * the disks. The first failure stops the other disks at their next write, so the caller
 * can clean up without waiting for them to finish.
 */
async function writeDisks(ctx: MachineRestoreContext, disks: readonly DiskToRestore[], request: MachineRestoreRequest): Promise<WrittenDisk[]> {
  const failed = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, failed.signal]) : failed.signal;
  return mapConcurrently(disks, request.diskConcurrency ?? 1, async (disk, i) => {
    try {
      return await writeDisk(ctx, disk, ctx.disks[i]!.index, request, signal);
    } catch (err) {
      failed.abort('another disk of the restore failed');
      throw err;
    }
  });
}

/** One disk: opened, written from the repository (in order for a sequential target), read back against the index, closed. */
async function writeDisk(ctx: MachineRestoreContext, disk: DiskToRestore, index: DiskIndex, request: MachineRestoreRequest,
  signal: AbortSignal): Promise<WrittenDisk> {
  const emit = request.onEvent ?? (() => {});
  const { what } = disk;
  const name = disk.stored.name;
  const onProgress = (phase: 'write' | 'verify') => (progress: Progress) => emit({ type: 'progress', disk: name, phase, progress });
  emit({ type: 'disk-start', disk: name, phase: 'write', bytesTotal: dataBytes(index) });
  checkInterrupted(signal, `restoring ${what}`);
  const target = interruptible(await disk.open(), signal, what);
  try {
    const { pool } = ctx;
    const tw = performance.now();
    const restore = target.sequential ? restoreDiskInOrder : restoreDisk;
    const { bytesWritten } = await restore({ repo: ctx.repo, pool, index, target, what, onProgress: onProgress('write') });
    const writeMs = Math.round(performance.now() - tw);
    emit({ type: 'disk-start', disk: name, phase: 'verify', bytesTotal: index.size });
    const tv = performance.now();
    await verifyWritten({ pool, index, read: (o, l, into) => target.readBack(o, l, into), what, onProgress: onProgress('verify') });
    const verifyMs = Math.round(performance.now() - tv);
    emit({ type: 'disk-done', disk: name });
    return { name, size: index.size, bytesWritten, writeMs, verifyMs };
  } finally {
    await target.close().catch(() => {});
  }
}
