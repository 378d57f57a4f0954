/**
 * Files a generation keeps beside its disks (a VM's `.vmx` and nvram): small, stored as
 * chunk blobs and named from the manifest's `machine.files`. The machine record is opaque
 * to the repository except for this one field, so gc keeps these blobs, verify checks them
 * and copy carries them, whatever the machine's kind.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { RepositoryDamagedError } from '../errors.js';
import { toHex } from './digest.js';
import { BlobType } from './pack.js';
import type { BlobWriter } from './pack-writer.js';
import type { Repository } from './repository.js';

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const MachineFileRef = z.object({
  /** The file's name where it was (`web01.nvram`). */
  name: z.string().min(1),
  /** What the file is to its machine (vSphere: `config` for the .vmx, `nvram`). */
  role: z.string().min(1),
  size: z.number().int().nonnegative(),
  /** SHA-256 of the content: what a restore checks it against and a user compares. */
  sha256: Hex64,
  /** The blobs holding the content, in order (one per chunk size). */
  blobs: z.array(Hex64),
}).strict();
export type MachineFileRef = z.infer<typeof MachineFileRef>;

/** A file as a provider read it, before it is stored. */
export interface MachineFileData {
  readonly name: string;
  readonly role: string;
  readonly data: Buffer;
}

/**
 * The files a stored machine record names: none when it has no `files` (a record written
 * before they were saved, or of plain disks). A `files` of another shape is damage: gc must
 * not remove blobs it could not see.
 */
export function machineFileRefs(machine: unknown, gen: string): MachineFileRef[] {
  if (typeof machine !== 'object' || machine === null || !('files' in machine)) return [];
  const parsed = z.array(MachineFileRef).safeParse((machine as { files: unknown }).files);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`${gen}: the machine's saved files are malformed (files.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`);
  }
  return parsed.data;
}

/** The record with its files' blobs replaced (a copy stores them under the destination's ids). */
export function withMachineFiles(machine: unknown, files: readonly MachineFileRef[]): unknown {
  if (typeof machine !== 'object' || machine === null || !('files' in machine)) return machine;
  return { ...machine, files };
}

/** Stores a file's content as blobs of at most the chunk size; returns its reference and the bytes it added. */
export async function storeMachineFile(repo: Repository, writer: BlobWriter, file: MachineFileData): Promise<{ ref: MachineFileRef; bytesStored: number }> {
  const blobs: string[] = [];
  let bytesStored = 0;
  const step = repo.config.chunkSize;
  // An empty file is one empty blob, so every saved file has a blob to check.
  for (let o = 0; o < Math.max(file.data.length, 1); o += step) {
    const piece = Buffer.from(file.data.subarray(o, o + step));
    const digest = repo.codec.id(piece);
    blobs.push(toHex(digest));
    const { added, ready } = writer.addBlob(digest, BlobType.Chunk, repo.codec.encode(digest, BlobType.Chunk, piece), piece.length);
    bytesStored += added;
    await ready;
  }
  const sha256 = createHash('sha256').update(file.data).digest('hex');
  return { ref: { name: file.name, role: file.role, size: file.data.length, sha256, blobs }, bytesStored };
}

/** Reads a saved file back, checked against its size and SHA-256. `what` names it for messages. */
export async function readMachineFile(repo: Repository, ref: MachineFileRef, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const b of ref.blobs) parts.push(await repo.readBlob(b, what));
  const data = Buffer.concat(parts);
  if (data.length !== ref.size || createHash('sha256').update(data).digest('hex') !== ref.sha256) {
    throw new RepositoryDamagedError(`${what}: the stored content (${data.length} bytes) does not match its record (${ref.size} bytes, sha256 ${ref.sha256})`);
  }
  return data;
}
