/** `backup NAME=URI …`: disk images and NBD exports backed up as one generation of a set. */
import { type BackupEvent, type DiskInput, backupSet } from '../jobs/backup-set.js';
import { type SetBackupPlan, planSetBackup } from '../jobs/plan-disks.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import { openSource, openSourceWithBitmap } from '../sources/open.js';
import type { DiskSource, Extent } from '../sources/types.js';

export type { SetBackupPlan } from '../jobs/plan-disks.js';

export { readChangedExtents } from './changed-extents.js';

export interface DiskToBackUp {
  readonly name: string;
  /** `file:PATH`, a plain path, or an NBD URI. */
  readonly uri: string;
  /** Changed extents given by the caller. */
  readonly changed?: readonly Extent[] | undefined;
  /** A QEMU dirty bitmap of an NBD disk that tells what changed. */
  readonly bitmap?: string | undefined;
}

export interface BackupDisksRequest {
  readonly repo: Repository;
  readonly set: string;
  readonly mode: RequestedMode;
  readonly disks: readonly DiskToBackUp[];
  readonly compressionLevel?: number | undefined;
  readonly diffEvery?: number | undefined;
  readonly onEvent?: (e: BackupEvent) => void;
}

export async function backupDisks(req: BackupDisksRequest): Promise<GenerationManifest> {
  return withSources(req.disks, (disks) => backupSet({
    repo: req.repo, set: req.set, mode: req.mode, disks,
    ...(req.compressionLevel !== undefined ? { compressionLevel: req.compressionLevel } : {}),
    ...(req.diffEvery !== undefined ? { diffEvery: req.diffEvery } : {}),
    ...(req.onEvent ? { onEvent: req.onEvent } : {}),
  }));
}

/** `backup … --dry-run`: each disk's mode and the bytes it would read; the sources are opened to read only. */
export function planDiskBackup(req: Omit<BackupDisksRequest, 'compressionLevel' | 'onEvent'>): Promise<SetBackupPlan> {
  return withSources(req.disks, (disks) => planSetBackup({ repo: req.repo, set: req.set, mode: req.mode, disks, diffEvery: req.diffEvery }));
}

async function withSources<T>(given: readonly DiskToBackUp[], use: (disks: DiskInput[]) => Promise<T>): Promise<T> {
  const sources: DiskSource[] = [];
  try {
    const disks: DiskInput[] = [];
    for (const d of given) {
      if (d.bitmap === undefined) {
        const source = await openSource(d.uri);
        sources.push(source);
        disks.push({ name: d.name, source, ...(d.changed ? { changed: d.changed } : {}) });
        continue;
      }
      const { source, token } = await openSourceWithBitmap(d.uri, d.bitmap);
      sources.push(source);
      disks.push({ name: d.name, source, changedSince: token });
    }
    return await use(disks);
  } finally {
    for (const s of sources) await s.close().catch(() => {});
  }
}
