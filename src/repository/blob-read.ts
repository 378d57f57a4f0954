/**
 * The one way blobs are read. Reads are planned by pack (pack-reads.ts), ranges are read
 * from the backend, blobs are decoded (opened, decompressed) and checked against their id in the chunk
 * workers (or on the calling thread for a single blob), and callers get views of verified
 * plain bytes. Nothing outside src/repository names a pack or reads one.
 *
 * Failures are told apart here, once:
 * - a pack that does not exist, a range past its end, a blob that does not decode or does
 *   not match its digest: the repository is damaged (RepositoryDamagedError, exit 5);
 * - anything else the backend throws (EIO, EACCES, a reset connection, a timeout): the
 *   data may be intact but could not be read (IoError, exit 1), so the user is not told
 *   their backups are broken when the storage was only unreachable.
 */
import { IoError, NotFoundError, RepositoryDamagedError, describeCause } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import type { ChunkPool, Slot } from './chunk-pool.js';
import type { DecodeBlob } from './chunk-protocol.js';
import { type BlobCodec, decodeVerified } from './blob-codec.js';
import type { BlobLocation } from './index-file.js';
import { packName } from './layout.js';
import type { PackRead } from './pack-reads.js';

/** A blob to read: its digest (hex) and where the index says it is. */
export interface StoredBlob {
  readonly digest: string;
  readonly loc: BlobLocation;
}

/** Names the use of a blob in messages: "restoring set vm generation 3 disk sda failed: the chunk at offset 0". */
export type Describe<B> = (blob: B) => string;

export function missingBlobError(where: string, digest: string): RepositoryDamagedError {
  return new RepositoryDamagedError(`${where}: blob ${digest} is missing from the repository`);
}

export function corruptBlobError(where: string, digest: string, pack: string, reason: string): RepositoryDamagedError {
  return new RepositoryDamagedError(`${where}: blob ${digest} in pack ${pack} is corrupt: ${reason}`);
}

/**
 * Reads `length` bytes at `offset` of a pack (the whole pack without a range) into `into`
 * when given. `where` names what the read is for.
 */
export async function readPackRange(backend: StorageBackend, pack: string, where: string, range?: { offset: number; length: number }, into?: Buffer): Promise<Buffer> {
  try {
    return await backend.get(packName(pack), range, into);
  } catch (err) {
    if (err instanceof NotFoundError) throw new RepositoryDamagedError(`${where}: pack ${pack} is missing from the repository`, { cause: err });
    const damage = range ? await packDamage(backend, pack, range.offset + range.length) : undefined;
    if (damage) throw new RepositoryDamagedError(`${where}: pack ${pack} ${damage}`, { cause: err });
    throw new IoError(`${where}: could not read pack ${pack}: ${describeCause(err)}`, { cause: err });
  }
}

/**
 * Why a ranged read of a pack failed, when a stat can tell: the pack is gone, or shorter
 * than the range (truncated, not unreachable). A stat that fails too tells nothing.
 */
async function packDamage(backend: StorageBackend, pack: string, end: number): Promise<string | undefined> {
  let stat;
  try {
    stat = await backend.stat(packName(pack));
  } catch {
    return undefined;
  }
  if (!stat) return 'is missing from the repository';
  return stat.size < end ? `is truncated (${stat.size} bytes, the index needs ${end})` : undefined;
}

/** Reads one blob on the calling thread and checks it against its digest. */
export async function readOneBlob(backend: StorageBackend, codec: BlobCodec, blob: StoredBlob, where: string): Promise<Buffer> {
  const { loc } = blob;
  const stored = await readPackRange(backend, loc.pack, where, { offset: loc.offset, length: loc.length });
  return decodeChecked(codec, stored, blob, where);
}

/** Decodes a stored blob and checks its length and digest; the error names the blob, its pack and the use. */
export function decodeChecked(codec: BlobCodec, stored: Buffer, blob: StoredBlob, where: string): Buffer {
  const out = Buffer.allocUnsafe(blob.loc.rawLength);
  const { type, compression, rawLength } = blob.loc;
  const reason = decodeVerified(codec, { id: Buffer.from(blob.digest, 'hex'), type, compression, rawLength }, stored, out);
  if (reason !== undefined) throw corruptBlobError(where, blob.digest, blob.loc.pack, reason);
  return out;
}

/** What readBlobs hands out: a view of each blob's plain bytes, in the order of the reads' blobs. */
export interface BlobsRead<B> {
  readonly plain: Buffer[];
  /** With findData: per blob, [start, end) pairs of its 4 KiB pages that hold data. */
  readonly runs: number[][] | undefined;
  /**
   * The first blob that failed its check, when one did: the blobs before it are verified
   * and in `plain`; it and those after it are not.
   */
  readonly corrupt?: { readonly index: number; readonly error: RepositoryDamagedError };
}

/**
 * Reads `reads` back to back into the slot's input, then has a chunk worker decode and
 * verify every blob into the slot's output. Read failures throw (see readPackRange); a
 * blob that fails its check is returned as `corrupt`, so a caller that serves readers
 * one by one can still hand out the blobs before it.
 */
export async function readBlobs<B extends StoredBlob>(backend: StorageBackend, pool: ChunkPool, slot: Slot, reads: readonly PackRead<B>[],
  options: { readonly findData: boolean; readonly describe: Describe<B> }): Promise<BlobsRead<B>> {
  const need = reads.reduce((n, r) => n + r.length, 0);
  const needPlain = reads.reduce((n, r) => n + r.rawLength, 0);
  if (need > slot.input.length || needPlain > slot.output.length) {
    throw new RangeError(`reading ${need} stored and ${needPlain} plain bytes needs a larger slot (${slot.input.length} and ${slot.output.length})`);
  }
  const blobs: B[] = [];
  const decode: DecodeBlob[] = [];
  let inOffset = 0;
  const landed: Promise<Buffer>[] = [];
  for (const r of reads) {
    const at = inOffset;
    landed.push(readPackRange(backend, r.pack, options.describe(r.blobs[0]!), { offset: r.offset, length: r.length }, slot.input.subarray(at, at + r.length)));
    for (const b of r.blobs) {
      blobs.push(b);
      decode.push({ offset: at + b.loc.offset - r.offset, length: b.loc.length, type: b.loc.type, compression: b.loc.compression, rawLength: b.loc.rawLength, digest: b.digest });
    }
    inOffset += r.length;
  }
  // Every read settles before the slot can be handed back: a failed one must not leave another still writing into it.
  const settled = await Promise.allSettled(landed);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  const reply = await pool.decode(slot, decode, options.findData);
  const good = reply.ok ? blobs.length : reply.failed;
  const plain: Buffer[] = [];
  let o = 0;
  for (let i = 0; i < good; i++) {
    const n = blobs[i]!.loc.rawLength;
    plain.push(slot.output.subarray(o, o + n));
    o += n;
  }
  if (reply.ok) return { plain, runs: reply.runs };
  const bad = blobs[reply.failed]!;
  return { plain, runs: undefined, corrupt: { index: reply.failed, error: corruptBlobError(options.describe(bad), bad.digest, bad.loc.pack, reply.reason) } };
}
