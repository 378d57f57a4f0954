/**
 * One machine, online, through its provider: made ready (orphans cleaned, change
 * tracking), frozen and its disks opened, backed up as one generation of its set, and
 * released (the snapshot removed) in every outcome. When only the release fails, the
 * committed generation stands and the job still fails, saying so.
 */
import { randomUUID } from 'node:crypto';
import { IoError, VmbkpError, describeCause, withNote } from '../errors.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import type { Semaphore } from '../concurrency.js';
import type { BackupProvider, MachineToBackUp, QuiescePolicy } from '../providers/machine-provider.js';
import { type BackupEvent, backupSet } from './backup-set.js';

export type MachineBackupEvent = BackupEvent | { type: 'step'; message: string };

export interface MachineBackupRequest {
  readonly repo: Repository;
  readonly provider: BackupProvider;
  /** The machine: a name or the provider's id. */
  readonly machine: string;
  readonly mode: RequestedMode;
  readonly quiesce?: QuiescePolicy;
  readonly memory?: boolean;
  readonly enableCbt?: boolean;
  readonly compressionLevel?: number;
  /** Every N-th backup of a disk reads it whole and checks CBT (backup-set.ts). */
  readonly diffEvery?: number;
  readonly workers?: number;
  /** Disks read at once (default 1). */
  readonly diskConcurrency?: number;
  /** Device keys of disks not to back up (a recipe's excludeDisks). */
  readonly excludeDisks?: readonly number[];
  /** Bounds machines frozen at once across a batch: held from the snapshot to its removal. */
  readonly snapshotSlots?: Semaphore;
  readonly onEvent?: (e: MachineBackupEvent) => void;
}

/** The generation made, and the machine it was made of. */
export interface MachineBackupResult {
  readonly manifest: GenerationManifest;
  readonly machine: MachineToBackUp;
}

export async function backupMachine(req: MachineBackupRequest): Promise<MachineBackupResult> {
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  const target = await req.provider.prepareBackup(req.machine, { enableCbt: !!req.enableCbt }, emit);
  const release = req.snapshotSlots ? await req.snapshotSlots.acquire() : () => {};
  try {
    const id = randomUUID();
    const generations = await req.repo.listGenerations(target.set);
    const newest = generations[generations.length - 1];
    const previous = newest ? await req.repo.readGeneration(target.set, newest.generation) : undefined;
    const frozen = await req.provider.beginBackup(target, {
      id, memory: req.memory ?? false, quiesce: req.quiesce ?? false, excludeDisks: req.excludeDisks ?? [],
      repositoryId: req.repo.config.id, ...(previous ? { previous } : {}),
    }, emit);
    let manifest: GenerationManifest | undefined;
    let failure: unknown;
    try {
      const hadGenerations = generations.length > 0;
      manifest = await backupSet({
        repo: req.repo, set: target.set, mode: req.mode, disks: frozen.disks, machine: frozen.record, id, lenient: true,
        ...(frozen.files ? { machineFiles: frozen.files } : {}),
        ...(req.compressionLevel !== undefined ? { compressionLevel: req.compressionLevel } : {}),
        ...(req.workers !== undefined ? { workers: req.workers } : {}),
        ...(req.diskConcurrency !== undefined ? { diskConcurrency: req.diskConcurrency } : {}),
        ...(req.diffEvery !== undefined ? { diffEvery: req.diffEvery } : {}),
        ...(frozen.beforeCommit ? { beforeCommit: () => frozen.beforeCommit!() } : {}),
        onEvent: (e) => {
          if (e.type === 'disk-start' && e.note && hadGenerations) warn(`VM ${target.name} disk ${e.disk}: ${e.mode} backup, ${e.note}`);
          emit(e);
        },
      });
    } catch (err) {
      failure = err;
    }
    try {
      await frozen.end();
    } catch (err) {
      if (failure === undefined) {
        const note = `generation ${manifest?.generation} of set ${target.set} was committed and is complete`;
        // A refused privilege keeps its code (exit 7): it is the user's to grant.
        if (err instanceof VmbkpError && err.code === 'AUTH') throw withNote(err, note);
        throw new IoError(`${describeCause(err)} (${note})`, { cause: err });
      }
      warn(describeCause(err));
    }
    if (failure !== undefined) throw failure;
    return { manifest: manifest!, machine: target };
  } finally {
    release();
  }
}
