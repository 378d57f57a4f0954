/** `restore --disk D --to URI`: one disk of a generation written to an image file or an NBD export. */
import type { Progress } from '../engine/backup-disk.js';
import { type RestoreDiskResult, restoreDiskJob } from '../jobs/restore-disk-job.js';
import type { Repository } from '../repository/repository.js';
import { openTarget } from '../sources/open.js';

export type { RestoreDiskResult } from '../jobs/restore-disk-job.js';

export interface DiskRestoreRequest {
  readonly repo: Repository;
  readonly set: string;
  readonly generation: string;
  readonly disk: string;
  /** `file:PATH` (sparse raw), `qcow2:PATH`, or an NBD URI. */
  readonly to: string;
  /** Replace an existing target file. */
  readonly overwrite: boolean;
  /** Called once the target is open, with the disk's size. */
  readonly onStart?: (size: number) => void;
  readonly onProgress?: (p: Progress) => void;
  readonly onWarning?: (message: string) => void;
}

export function restoreDiskTo(req: DiskRestoreRequest): Promise<RestoreDiskResult> {
  return restoreDiskJob({
    repo: req.repo, set: req.set, generation: req.generation, disk: req.disk,
    openTarget: async (size) => {
      const t = await openTarget(req.to, size, req.overwrite);
      req.onStart?.(size);
      return t;
    },
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    ...(req.onWarning ? { onWarning: req.onWarning } : {}),
  });
}
