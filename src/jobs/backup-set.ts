/**
 * One backup set end to end: lock, pick each disk's mode, back the disks up, make the
 * data durable, then commit the generation's manifest. A failure anywhere before the
 * commit leaves no generation (only unreferenced data, which gc removes).
 */
import { randomUUID } from 'node:crypto';
import { failpoint } from '../failpoints.js';
import { backupDisk, type Progress } from '../engine/backup-disk.js';
import { type DiskIndex, openDiskIndex, storeDiskIndex } from '../repository/disk-index.js';
import type { DiskRecord, GenerationManifest, RequestedMode } from '../repository/generation.js';
import { checkDiskName, checkSetName } from '../repository/layout.js';
import { type MachineFileData, type MachineFileRef, storeMachineFile } from '../repository/machine-files.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import type { DiskSource, Extent } from '../sources/types.js';
import { type ModeChoice, chooseMode } from './choose-mode.js';
import { commitAsNext } from './commit-generation.js';
import { mapConcurrently } from '../concurrency.js';

export interface DiskInput {
  readonly name: string;
  readonly source: DiskSource;
  /** Changed extents supplied by the caller (e.g. --changed); otherwise the source is asked. */
  readonly changed?: readonly Extent[];
  /**
   * The change token to ask the source with, instead of the previous generation's: one the
   * source keeps itself (a QEMU dirty bitmap of an NBD disk, see sources/nbd.ts).
   */
  readonly changedSince?: string;
  /** Why the source's change data since the previous generation cannot be trusted: no incr then. */
  readonly changesVoid?: string;
}

export type BackupEvent =
  | { type: 'disk-start'; disk: string; mode: string; note?: string; bytesTotal: number }
  | { type: 'progress'; disk: string; progress: Progress }
  | { type: 'disk-done'; disk: string; record: DiskRecord }
  | { type: 'warning'; message: string };

export interface BackupSetRequest {
  readonly repo: Repository;
  readonly set: string;
  readonly mode: RequestedMode;
  readonly disks: readonly DiskInput[];
  readonly compressionLevel?: number;
  readonly workers?: number;
  /** Disks backed up at once (default 1: one after the other). */
  readonly diskConcurrency?: number;
  readonly machine?: unknown;
  /** Files of the machine saved beside its disks (a VM's .vmx and nvram): stored as blobs, named in `machine.files`. */
  readonly machineFiles?: readonly MachineFileData[];
  /** The generation's id (default: a new UUID); a VM backup names its snapshot after it. */
  readonly id?: string;
  /** Fall back from an explicit incr or diff instead of refusing (see chooseMode). */
  readonly lenient?: boolean;
  /**
   * Every N-th backup of a disk reads it whole (a diff) even where incr is possible, and
   * reports what the source's changes (CBT) missed. Counted per disk (DiskRecord.incrsSinceFullRead).
   */
  readonly diffEvery?: number;
  /** Asked after the data is durable, right before the commit: throws to commit nothing (MachineBackup.beforeCommit). */
  readonly beforeCommit?: () => Promise<void>;
  readonly onEvent?: (e: BackupEvent) => void;
}

interface DiskPlan {
  readonly choice: ModeChoice;
  readonly changed: readonly Extent[] | undefined;
  /** Opened lazily: the backup reads only the pieces it touches. */
  readonly previousIndex: DiskIndex | undefined;
  readonly previousZeroChunks: number | undefined;
  /** A periodic full read (--diff-every): the changes the source reported, checked against the diff. */
  readonly checkChanges?: readonly Extent[];
}

/** Incr backups since the disk was last read whole, per its previous record; undefined when unknown (an older vmbkp's incr). */
function incrsSinceFullRead(prev: DiskRecord): number | undefined {
  return prev.incrsSinceFullRead ?? (prev.mode === 'incr' ? undefined : 0);
}

/**
 * With --diff-every N, whether a disk that could be an incr is due for a full read (a diff):
 * the note saying so, or undefined. Shared with the dry run's prediction.
 */
export function periodicFullRead(prev: DiskRecord | undefined, diffEvery: number | undefined): string | undefined {
  if (diffEvery === undefined || !prev) return undefined;
  const n = incrsSinceFullRead(prev);
  if (n !== undefined && n + 1 < diffEvery) return undefined;
  return `periodic full read (--diff-every ${diffEvery}): ${n === undefined ? 'incr backups since the last full read unknown' : `${n} incr backups since the last full read`}; `
    + 'changes checked against what the change tracking reported';
}

/** The counter a new record of the disk carries. */
function nextIncrCount(mode: DiskRecord['mode'], prev: DiskRecord | undefined): number | undefined {
  if (mode !== 'incr') return 0;
  const n = prev ? incrsSinceFullRead(prev) : undefined;
  return n === undefined ? undefined : n + 1;
}

/**
 * Why the previous generation (`prev`: its record of the disk) cannot serve as the base of
 * a diff or incr of a disk of `size` bytes now, or undefined when it can. Shared with the dry run's prediction.
 */
export function previousUnusable(set: string, previous: GenerationManifest | undefined, prev: DiskRecord | undefined,
  disk: string, size: number, chunkSize: number): string | undefined {
  if (!previous) return `set ${set} has no generation yet`;
  if (!prev) return `generation ${previous.generation} has no disk ${disk}`;
  if (prev.size !== size) return `the disk was ${prev.size} bytes in generation ${previous.generation}, it is ${size} now`;
  if (prev.chunkSize !== chunkSize) return 'the previous generation used another chunk size';
  return undefined;
}

/** Decides a disk's mode from the previous generation and what changed, and loads what that mode needs. */
async function planDisk(repo: Repository, set: string, previous: GenerationManifest | undefined, disk: DiskInput,
  requested: RequestedMode, lenient: boolean, diffEvery: number | undefined): Promise<DiskPlan> {
  const what = `disk ${disk.name} of set ${set}`;
  const prevRecord = previous?.disks.find((d) => d.name === disk.name);
  const previousWhy = previousUnusable(set, previous, prevRecord, disk.name, disk.source.size, repo.config.chunkSize);

  let changed = disk.changed;
  let changesWhy: string | undefined;
  const since = disk.changedSince ?? prevRecord?.changeToken;
  if (!changed && disk.changesVoid !== undefined) {
    changesWhy = disk.changesVoid;
  } else if (!changed && since) {
    const answer = await disk.source.changedSince(since);
    if ('unknown' in answer) changesWhy = answer.unknown;
    else changed = answer;
  } else if (!changed) {
    changesWhy = prevRecord ? 'no changed extents given and no change token from the previous generation' : undefined;
  }

  let choice = chooseMode(what, { requested, previousUsable: previousWhy === undefined, previousWhy, changesKnown: changed !== undefined, changesWhy, lenient });
  let checkChanges: readonly Extent[] | undefined;
  const periodic = choice.mode === 'incr' ? periodicFullRead(prevRecord, diffEvery) : undefined;
  if (periodic !== undefined) {
    // The reported changes are still asked for (above) and kept: the diff checks them.
    checkChanges = changed;
    choice = { mode: 'diff', note: periodic };
  }
  const previousIndex = choice.mode !== 'full' && prevRecord
    ? await openDiskIndex(repo, prevRecord, `reading the index of ${what} generation ${previous!.generation}`)
    : undefined;
  return { choice, changed, previousIndex, previousZeroChunks: prevRecord?.stats.chunksZero, ...(checkChanges ? { checkChanges } : {}) };
}

export async function backupSet(req: BackupSetRequest): Promise<GenerationManifest> {
  const { repo, set } = req;
  checkSetName(set);
  req.disks.forEach((d) => checkDiskName(d.name));
  const emit = req.onEvent ?? (() => {});
  const lock = await RepositoryLock.acquire(repo, 'shared', `backup of ${set}`, (message) => emit({ type: 'warning', message }));
  const workers = repo.acquirePool(req.workers);
  const pool = workers.pool;
  try {
    await repo.loadIndex();
    const writer = repo.writer();
    const generations = await repo.listGenerations(set);
    const latest = generations[generations.length - 1];
    const previous = latest ? await repo.readGeneration(set, latest.generation) : undefined;
    const started = new Date();
    const backupOne = async (disk: DiskInput): Promise<DiskRecord> => {
      const t0 = performance.now();
      const { choice, changed, previousIndex, previousZeroChunks, checkChanges } = await planDisk(repo, set, previous, disk, req.mode, req.lenient ?? false, req.diffEvery);
      const changeToken = await disk.source.changeToken();
      emit({ type: 'disk-start', disk: disk.name, mode: choice.mode, ...(choice.note ? { note: choice.note } : {}), bytesTotal: disk.source.size });
      if (disk.source.warning !== undefined) emit({ type: 'warning', message: disk.source.warning });

      const result = await backupDisk({
        repo, writer, pool, source: disk.source, ...(req.compressionLevel === undefined ? {} : { compressionLevel: req.compressionLevel }), mode: choice.mode, what: `disk ${disk.name} of set ${set}`,
        ...(previousIndex ? { previous: previousIndex } : {}),
        ...(previousZeroChunks !== undefined ? { previousZeroChunks } : {}),
        ...(changed ? { changed } : {}),
        ...(checkChanges ? { checkChanges } : {}),
        onProgress: (progress) => emit({ type: 'progress', disk: disk.name, progress }),
      });
      const stored = await storeDiskIndex(repo, writer, result.index);
      if (result.missedBytes) {
        emit({ type: 'warning', message: `disk ${disk.name} of set ${set}: the periodic full read found ${result.missedBytes} bytes changed `
          + `since generation ${previous!.generation} that the change tracking did not report: an incr would have missed them (they are in this generation)` });
      }
      const incrs = nextIncrCount(choice.mode, previous?.disks.find((d) => d.name === disk.name));
      const record: DiskRecord = {
        name: disk.name,
        size: disk.source.size,
        chunkSize: repo.config.chunkSize,
        index: stored.pieces,
        mode: choice.mode,
        source: disk.source.description,
        ...(changeToken ? { changeToken } : {}),
        ...(choice.note ? { note: choice.note } : {}),
        ...(incrs !== undefined ? { incrsSinceFullRead: incrs } : {}),
        ...(result.missedBytes !== undefined ? { cbtMissedBytes: result.missedBytes } : {}),
        stats: { ...result.stats, bytesStored: result.stats.bytesStored + stored.bytesStored, durationMs: Math.round(performance.now() - t0) },
      };
      emit({ type: 'disk-done', disk: disk.name, record });
      return record;
    };
    // Records keep the order of req.disks whatever order the disks finish in.
    const records = await mapConcurrently(req.disks, req.diskConcurrency ?? 1, backupOne);
    const files: MachineFileRef[] = [];
    for (const f of req.machineFiles ?? []) files.push((await storeMachineFile(repo, writer, f)).ref);
    // `files: []` says none could be saved, unlike a record of a vmbkp that saved none.
    const machine = req.machineFiles !== undefined && typeof req.machine === 'object' && req.machine !== null ? { ...req.machine, files } : req.machine;

    await writer.flush();
    await failpoint('backup:before-commit');
    await req.beforeCommit?.();
    const manifest: GenerationManifest = {
      version: 1,
      set,
      generation: (latest?.generation ?? 0) + 1,
      id: req.id ?? randomUUID(),
      started: started.toISOString(),
      finished: new Date().toISOString(),
      mode: req.mode,
      disks: records,
      ...(machine !== undefined ? { machine } : {}),
    };
    // Two backups of one set (from two hosts, say) may finish together: one at a time numbers and writes its manifest.
    await commitAsNext(repo, manifest, { onWarning: (message) => emit({ type: 'warning', message }) });
    return manifest;
  } catch (err) {
    // The backup's own error, not a lock release that fails in the same outage, is what the user sees.
    await workers.release();
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await workers.release();
    await lock.release();
  }
}
