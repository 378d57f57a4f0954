/** `restore --disk D --to URI`: one disk of a generation written to an image file or an NBD export. */
import fs from 'node:fs/promises';
import type { Progress } from '../engine/backup-disk.js';
import { dataBytes } from '../engine/restore-target.js';
import { InputError, IoError, checkInterrupted, describeCause } from '../errors.js';
import { findDisk, resolveGeneration } from '../jobs/resolve.js';
import { type RestoreDiskResult, restoreDiskJob } from '../jobs/restore-disk-job.js';
import { isNbdUri } from '../nbd/uri.js';
import { loadDiskIndex } from '../repository/disk-index.js';
import type { Repository } from '../repository/repository.js';
import { filePath, openTarget } from '../sources/open.js';
import type { DiskTarget } from '../sources/types.js';

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
  /** Stops the restore at its next write (a file it created is removed). */
  readonly signal?: AbortSignal;
}

/** The target, failing its next write once `signal` fires. */
function stoppable(t: DiskTarget, signal: AbortSignal, what: string): DiskTarget {
  return {
    description: t.description, size: t.size, zeroed: t.zeroed, ...(t.sequential !== undefined ? { sequential: t.sequential } : {}),
    write: (offset, data) => { checkInterrupted(signal, what); return t.write(offset, data); },
    zero: (offset, length) => { checkInterrupted(signal, what); return t.zero(offset, length); },
    flush: () => t.flush(),
    close: () => t.close(),
    ...(t.discard ? { discard: () => t.discard!() } : {}),
  };
}

export function restoreDiskTo(req: DiskRestoreRequest): Promise<RestoreDiskResult> {
  return restoreDiskJob({
    repo: req.repo, set: req.set, generation: req.generation, disk: req.disk,
    openTarget: async (size) => {
      const t = await openTarget(req.to, size, req.overwrite);
      req.onStart?.(size);
      return req.signal ? stoppable(t, req.signal, `the restore of set ${req.set} disk ${req.disk} to ${req.to}`) : t;
    },
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    ...(req.onWarning ? { onWarning: req.onWarning } : {}),
  });
}

/** What `restore --disk D --to URI --dry-run` says: the disk, what would be written, and the target's state. */
export interface DiskRestorePlan {
  readonly dryRun: true;
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  /** The disk's size: the size the target gets. */
  readonly size: number;
  /**
   * The most the restore writes: the chunks that hold data (all-zero chunks stay holes).
   * Runs of zeros inside them are skipped on a fresh file, so it may write less.
   */
  readonly bytesToWriteAtMost: number;
  readonly target: {
    readonly uri: string;
    readonly kind: 'file' | 'qcow2' | 'nbd';
    /** For files: whether the file exists now, and its size. An NBD export is not contacted. */
    readonly exists?: boolean;
    readonly currentSize?: number;
    /** The restore would replace an existing file (with --overwrite), or write over the export. */
    readonly overwritten: boolean;
  };
  /** Why the restore would be refused. */
  readonly refused?: string;
}

/**
 * Resolves the generation and disk and loads its index (reading only, no lock: a lock is a
 * write), and looks at the target without opening it for writing.
 */
export async function planDiskRestore(req: Pick<DiskRestoreRequest, 'repo' | 'set' | 'generation' | 'disk' | 'to' | 'overwrite'>): Promise<DiskRestorePlan> {
  const manifest = await resolveGeneration(req.repo, req.set, req.generation);
  const record = findDisk(manifest, req.disk);
  await req.repo.loadIndex();
  const index = await loadDiskIndex(req.repo, record, `planning the restore of set ${manifest.set} generation ${manifest.generation} disk ${record.name}`);
  const base = { dryRun: true as const, set: manifest.set, generation: manifest.generation, disk: record.name, size: record.size, bytesToWriteAtMost: dataBytes(index) };
  if (isNbdUri(req.to)) return { ...base, target: { uri: req.to, kind: 'nbd', overwritten: true } };
  const qcow2 = req.to.startsWith('qcow2:');
  const file = qcow2 ? req.to.slice('qcow2:'.length) : filePath(req.to);
  if (file === undefined || file === '') {
    throw new InputError(`restore target ${JSON.stringify(req.to)} is not supported: use file:PATH (sparse raw), qcow2:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  }
  const st = await fs.lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new IoError(`looking at restore target ${file} failed: ${describeCause(err)}`, { cause: err });
  });
  const target = { uri: req.to, kind: qcow2 ? 'qcow2' as const : 'file' as const, exists: st !== undefined, ...(st ? { currentSize: st.size } : {}), overwritten: st !== undefined && req.overwrite };
  return { ...base, target, ...(st && !req.overwrite ? { refused: `restoring to ${file} refused: the file exists (pass --overwrite to replace it)` } : {}) };
}
