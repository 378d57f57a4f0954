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
  DiskToRestore, MachineRestoreContext, MachineUnderRestore, MachineRestoreRequest, RestoreProvider, RestoredMachine, WrittenDisk,
} from '../providers/machine-provider.js';
import { type StoredMachine, storedMachine } from '../providers/stored-machine.js';
import type { RestoreTarget } from '../sources/types.js';
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
    written = await writeDisks(ctx, machine, request);
    await machine.complete();
  } catch (err) {
    throw await machine.abandon(err);
  }
  return machine.finish(written);
}

/**
 * Writes and checks every disk, `request.diskConcurrency` at once; results in the order of
 * the disks. The first failure stops the other disks at their next write, so the caller
 * can clean up without waiting for them to finish. A machine with `written` has every
 * disk written first, then `written` called, then every disk read back.
 */
async function writeDisks(ctx: MachineRestoreContext, machine: MachineUnderRestore, request: MachineRestoreRequest): Promise<WrittenDisk[]> {
  const disks = machine.disks;
  const failed = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, failed.signal]) : failed.signal;
  const n = request.diskConcurrency ?? 1;
  const guard = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      failed.abort('another disk of the restore failed');
      throw err;
    }
  };
  if (!machine.written) {
    return mapConcurrently(disks, n, (disk, i) => guard(async () => {
      const w = await writeDisk(ctx, disk, ctx.disks[i]!.index, request, signal);
      try {
        return await checkDisk(ctx, w, request);
      } finally {
        await w.target.close().catch(() => {});
      }
    }));
  }
  const open: OpenedDisk[] = [];
  try {
    const all = await mapConcurrently(disks, n, (disk, i) => guard(async () => {
      const w = await writeDisk(ctx, disk, ctx.disks[i]!.index, request, signal);
      open.push(w);
      return w;
    }));
    await machine.written();
    return await mapConcurrently(all, n, (w) => guard(() => checkDisk(ctx, w, request)));
  } finally {
    for (const w of open) await w.target.close().catch(() => {});
  }
}

/** A disk written and still open, to be read back. */
interface OpenedDisk {
  readonly disk: DiskToRestore;
  readonly index: DiskIndex;
  readonly target: RestoreTarget;
  readonly bytesWritten: number;
  readonly writeMs: number;
}

/** One disk: opened and written from the repository (in order for a sequential target); closed if that fails. */
async function writeDisk(ctx: MachineRestoreContext, disk: DiskToRestore, index: DiskIndex, request: MachineRestoreRequest,
  signal: AbortSignal): Promise<OpenedDisk> {
  const emit = request.onEvent ?? (() => {});
  const { what } = disk;
  const name = disk.stored.name;
  emit({ type: 'disk-start', disk: name, phase: 'write', bytesTotal: dataBytes(index) });
  checkInterrupted(signal, `restoring ${what}`);
  const target = interruptible(await disk.open(), signal, what);
  try {
    const tw = performance.now();
    const restore = target.sequential ? restoreDiskInOrder : restoreDisk;
    const onProgress = (progress: Progress) => emit({ type: 'progress', disk: name, phase: 'write', progress });
    const { bytesWritten } = await restore({ repo: ctx.repo, pool: ctx.pool, index, target, what, onProgress });
    return { disk, index, target, bytesWritten, writeMs: Math.round(performance.now() - tw) };
  } catch (err) {
    await target.close().catch(() => {});
    throw err;
  }
}

/** A written disk read back against the index (the caller closes it). */
async function checkDisk(ctx: MachineRestoreContext, w: OpenedDisk, request: MachineRestoreRequest): Promise<WrittenDisk> {
  const emit = request.onEvent ?? (() => {});
  const name = w.disk.stored.name;
  emit({ type: 'disk-start', disk: name, phase: 'verify', bytesTotal: w.index.size });
  const tv = performance.now();
  const onProgress = (progress: Progress) => emit({ type: 'progress', disk: name, phase: 'verify', progress });
  await verifyWritten({ pool: ctx.pool, index: w.index, read: (o, l, into) => w.target.readBack(o, l, into), what: w.disk.what, onProgress });
  const verifyMs = Math.round(performance.now() - tv);
  emit({ type: 'disk-done', disk: name });
  return { name, size: w.index.size, bytesWritten: w.bytesWritten, writeMs: w.writeMs, verifyMs };
}
