/**
 * A machine backup restored as a machine, through its provider, under a shared lock: the
 * generation resolved, its stored machine checked, every disk's index loaded (so a
 * missing piece fails before anything is made), then the provider makes the machine and
 * writes its disks. The repository's chunk workers are leased only once the provider needs them.
 */
import { RepositoryDamagedError } from '../errors.js';
import { type DiskIndex, loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { PoolLease, Repository } from '../repository/repository.js';
import type { MachineRestoreContext, MachineRestoreRequest, RestoreProvider, RestoredMachine } from '../providers/machine-provider.js';
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
  const lock = await RepositoryLock.acquire(repo.backend, 'shared', `restore of ${job.set}`, warn);
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
    const outcome = await job.provider.restore(ctx, job.request);
    return { ...outcome, set: manifest.set, generation: manifest.generation, durationMs: Math.round(performance.now() - t0) };
  } finally {
    try {
      await workers?.release();
    } finally {
      await lock.release();
    }
  }
}
