/**
 * What `backup NAME=URI … --dry-run` would do, found by reading only: each disk's mode as
 * backupSet would choose it (the same rules: previousUnusable, chooseMode, periodic full
 * reads) and the bytes it would read. No lock, nothing written.
 */
import { chunkRanges, mergeExtents } from '../engine/extents.js';
import type { BackupMode, RequestedMode } from '../repository/generation.js';
import { checkDiskName, checkSetName } from '../repository/layout.js';
import type { Repository } from '../repository/repository.js';
import type { Extent } from '../sources/types.js';
import { type DiskInput, periodicFullRead, previousUnusable } from './backup-set.js';
import { chooseMode } from './choose-mode.js';

export interface DiskBackupPlan {
  readonly disk: string;
  readonly source: string;
  readonly size: number;
  readonly mode: BackupMode;
  /** Why not a better mode. */
  readonly why?: string;
  /** The bytes the backup would read from the source: allocated data (full, diff), or the changed chunks (incr). */
  readonly bytesToRead: number;
}

export interface SetBackupPlan {
  readonly dryRun: true;
  readonly set: string;
  /** The generation the backup would create. */
  readonly generation: number;
  readonly disks: readonly DiskBackupPlan[];
  readonly bytesToRead: number;
}

const sum = (extents: readonly Extent[]) => extents.reduce((n, e) => n + e.length, 0);

export async function planSetBackup(req: {
  readonly repo: Repository; readonly set: string; readonly mode: RequestedMode; readonly disks: readonly DiskInput[]; readonly diffEvery?: number | undefined;
}): Promise<SetBackupPlan> {
  const { repo, set } = req;
  checkSetName(set);
  req.disks.forEach((d) => checkDiskName(d.name));
  const generations = await repo.listGenerations(set);
  const latest = generations[generations.length - 1];
  const previous = latest ? await repo.readGeneration(set, latest.generation) : undefined;
  const chunkSize = repo.config.chunkSize;
  const disks: DiskBackupPlan[] = [];
  for (const disk of req.disks) {
    const size = disk.source.size;
    const prev = previous?.disks.find((d) => d.name === disk.name);
    const previousWhy = previousUnusable(set, previous, prev, disk.name, size, chunkSize);
    let changed = disk.changed;
    let changesWhy: string | undefined;
    const since = disk.changedSince ?? prev?.changeToken;
    if (!changed && disk.changesVoid !== undefined) changesWhy = disk.changesVoid;
    else if (!changed && since) {
      const answer = await disk.source.changedSince(since);
      if ('unknown' in answer) changesWhy = answer.unknown;
      else changed = answer;
    } else if (!changed) changesWhy = prev ? 'no changed extents given and no change token from the previous generation' : undefined;
    let choice = chooseMode(`disk ${disk.name} of set ${set}`, {
      requested: req.mode, previousUsable: previousWhy === undefined, previousWhy, changesKnown: changed !== undefined, changesWhy, lenient: false,
    });
    const periodic = choice.mode === 'incr' ? periodicFullRead(prev, req.diffEvery) : undefined;
    if (periodic !== undefined) choice = { mode: 'diff', note: periodic };
    // As backupDisk reads: an incr reads whole changed chunks; full and diff the allocated data only.
    const bytesToRead = choice.mode === 'incr'
      ? chunkRanges(changed!, chunkSize).reduce((n, r) => n + Math.min(size, r.end * chunkSize) - r.first * chunkSize, 0)
      : sum(mergeExtents(await disk.source.allocated(0, size)));
    disks.push({ disk: disk.name, source: disk.source.description, size, mode: choice.mode, ...(choice.note ? { why: choice.note } : {}), bytesToRead });
  }
  return { dryRun: true, set, generation: (latest?.generation ?? 0) + 1, disks, bytesToRead: disks.reduce((n, d) => n + d.bytesToRead, 0) };
}
