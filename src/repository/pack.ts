/**
 * Packs: many compressed blobs in one file, so that a repository holds thousands of
 * files rather than millions. A pack describes itself in a trailer (so indexes can be
 * rebuilt from packs) and is named by the SHA-256 of its whole content.
 *
 *   blob 0 | blob 1 | … | entry 0 | entry 1 | … | u32 entry count | "VMBKPCK1"
 *   entry: digest[32] type:u8 compression:u8 length:u32 rawLength:u32   (offsets are cumulative)
 */
import { createHash } from 'node:crypto';
import { RepositoryDamagedError } from '../errors.js';
import { DIGEST_LENGTH, toHex } from './digest.js';

export const BlobType = { Chunk: 0, IndexPiece: 1 } as const;
export type BlobType = (typeof BlobType)[keyof typeof BlobType];
export const Compression = { None: 0, Zstd: 1 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export const PACK_MAGIC = Buffer.from('VMBKPCK1', 'latin1');
const PACK_ENTRY = DIGEST_LENGTH + 1 + 1 + 4 + 4;

export interface PackEntry {
  readonly digest: Buffer;
  readonly type: BlobType;
  readonly compression: Compression;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

export interface FinishedPack {
  readonly id: string;
  readonly parts: Buffer[];
  readonly size: number;
  readonly entries: PackEntry[];
}

/**
 * Collects blobs for one pack file in one buffer of fixed capacity (reused across packs
 * by the caller), so that building a pack allocates nothing per blob.
 */
export class PackBuilder {
  readonly entries: PackEntry[] = [];
  size = 0;

  constructor(readonly buffer: Buffer) {}

  get capacity(): number {
    return this.buffer.length;
  }

  fits(length: number): boolean {
    return this.size + length <= this.buffer.length;
  }

  /** Copies a blob in; the caller checks fits() first. */
  add(digest: Buffer, type: BlobType, compression: Compression, rawLength: number, data: Uint8Array): void {
    if (!this.fits(data.length)) throw new RangeError('pack buffer full');
    this.entries.push({ digest, type, compression, offset: this.size, length: data.length, rawLength });
    this.buffer.set(data, this.size);
    this.size += data.length;
  }

  get count(): number {
    return this.entries.length;
  }

  finish(): FinishedPack {
    const trailer = Buffer.alloc(this.entries.length * PACK_ENTRY + 4 + PACK_MAGIC.length);
    let o = 0;
    for (const e of this.entries) {
      e.digest.copy(trailer, o); o += DIGEST_LENGTH;
      trailer.writeUInt8(e.type, o++);
      trailer.writeUInt8(e.compression, o++);
      trailer.writeUInt32LE(e.length, o); o += 4;
      trailer.writeUInt32LE(e.rawLength, o); o += 4;
    }
    trailer.writeUInt32LE(this.entries.length, o); o += 4;
    PACK_MAGIC.copy(trailer, o);
    const data = this.buffer.subarray(0, this.size);
    const id = createHash('sha256').update(data).update(trailer).digest('hex');
    return { id, parts: [data, trailer], size: this.size + trailer.length, entries: this.entries };
  }
}

/** Reads the entry table at the end of a whole pack file. */
export function decodePackTrailer(pack: Buffer, name: string): PackEntry[] {
  const damaged = (why: string) => new RepositoryDamagedError(`reading pack ${name} failed: ${why}`);
  if (pack.length < 4 + PACK_MAGIC.length || !pack.subarray(pack.length - PACK_MAGIC.length).equals(PACK_MAGIC)) {
    throw damaged('no pack trailer (file truncated or not a pack)');
  }
  const count = pack.readUInt32LE(pack.length - PACK_MAGIC.length - 4);
  const tableStart = pack.length - PACK_MAGIC.length - 4 - count * PACK_ENTRY;
  if (tableStart < 0) throw damaged(`trailer claims ${count} blobs, more than the file holds`);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (let i = 0, o = tableStart; i < count; i++, o += PACK_ENTRY) {
    const digest = Buffer.from(pack.subarray(o, o + DIGEST_LENGTH));
    const type = pack.readUInt8(o + DIGEST_LENGTH);
    const compression = pack.readUInt8(o + DIGEST_LENGTH + 1);
    const length = pack.readUInt32LE(o + DIGEST_LENGTH + 2);
    const rawLength = pack.readUInt32LE(o + 38);
    if (type > 1 || compression > 1) throw damaged(`blob ${toHex(digest)} has unknown type ${type} or compression ${compression}`);
    entries.push({ digest, type: type as BlobType, compression: compression as Compression, offset, length, rawLength });
    offset += length;
  }
  if (offset !== tableStart) throw damaged(`blob lengths add up to ${offset} bytes, the data area holds ${tableStart}`);
  return entries;
}
