/** Walking every generation's disks: what verify checks and what gc keeps. */
import { IoError, VmbkpError } from '../errors.js';
import { type DiskIndex, loadDiskIndex } from './disk-index.js';
import type { DiskRecord, GenerationManifest } from './generation.js';
import { type MachineFileRef, machineFileRefs } from './machine-files.js';
import type { GenerationRef, Repository } from './repository.js';

export interface DiskRef {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
}

export function describeRef(r: Partial<DiskRef>): string {
  return [r.set !== undefined && `set ${r.set}`, r.generation !== undefined && `generation ${r.generation}`, r.disk !== undefined && `disk ${r.disk}`]
    .filter(Boolean).join(' ');
}

export interface WalkVisitor {
  disk(ref: DiskRef, record: DiskRecord, index: DiskIndex, manifest: GenerationManifest): void;
  /** The files the generation's machine record saved beside its disks (machine-files.ts), when it has any. */
  files?(ref: GenerationRef, files: readonly MachineFileRef[]): void;
  /** A generation or disk index that could not be read; without it the walk throws. */
  damaged?(where: Partial<DiskRef>, err: VmbkpError): void;
  /** After each generation: how many of them were walked. */
  progress?(done: number, total: number): void;
}

export async function walkDisks(repo: Repository, visitor: WalkVisitor, refs?: GenerationRef[]): Promise<void> {
  const all = refs ?? await repo.listGenerations();
  let done = 0;
  for (const ref of all) {
    visitor.progress?.(done++, all.length);
    let manifest: GenerationManifest;
    try {
      manifest = await repo.readGeneration(ref.set, ref.generation);
    } catch (err) {
      if (!visitor.damaged || !isDamage(err)) throw err;
      visitor.damaged(ref, err);
      continue;
    }
    try {
      const files = machineFileRefs(manifest.machine, describeRef(ref));
      if (files.length > 0) visitor.files?.(ref, files);
    } catch (err) {
      if (!visitor.damaged || !isDamage(err)) throw err;
      visitor.damaged(ref, err);
    }
    for (const record of manifest.disks) {
      const where: DiskRef = { set: ref.set, generation: ref.generation, disk: record.name };
      let index: DiskIndex;
      try {
        index = await loadDiskIndex(repo, record, describeRef(where));
      } catch (err) {
        if (!visitor.damaged || !isDamage(err)) throw err;
        visitor.damaged(where, err);
        continue;
      }
      visitor.disk(where, record, index, manifest);
    }
  }
  visitor.progress?.(done, all.length);
}

/**
 * Damage is reported and the walk goes on; a failure to read (IoError) is not damage and
 * ends the walk, so verify never calls unreachable storage broken backups.
 */
function isDamage(err: unknown): err is VmbkpError {
  return err instanceof VmbkpError && !(err instanceof IoError);
}
