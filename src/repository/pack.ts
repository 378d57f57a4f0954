/**
 * Packs: many encoded blobs in one file, so that a repository holds thousands of
 * files rather than millions. A pack describes itself in a trailer (so indexes can be
 * rebuilt from packs) and is named by the SHA-256 of its whole content. In an encrypted
 * repository the trailer's table is sealed (it holds the blobs' ids).
 *
 *   plaintext: blob 0 | blob 1 | … | table | "VMBKPCK1"
 *   encrypted: blob 0 | blob 1 | … | sealed table | u32 sealed length | "VMBKPCK2"
 *   table:     entry 0 | entry 1 | … | u32 entry count
 *   entry:     digest[32] type:u8 compression:u8 length:u32 rawLength:u32   (offsets are cumulative)
 */
import { createHash } from 'node:crypto';
import { RepositoryDamagedError } from '../errors.js';
import { DIGEST_LENGTH, toHex } from './digest.js';
import { SEAL_OVERHEAD } from './encryption.js';
import { type ObjectCodec, PLAIN_OBJECTS } from './object-codec.js';

export const BlobType = { Chunk: 0, IndexPiece: 1 } as const;
export type BlobType = (typeof BlobType)[keyof typeof BlobType];
export const Compression = { None: 0, Zstd: 1 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export const PACK_MAGIC = Buffer.from('VMBKPCK1', 'latin1');
export const SEALED_PACK_MAGIC = Buffer.from('VMBKPCK2', 'latin1');
/** What a sealed pack table is sealed for (its associated data): packs are named by content, not by a name known in advance. */
export const PACK_TABLE_OBJECT = 'pack table';
const PACK_ENTRY = DIGEST_LENGTH + 1 + 1 + 4 + 4;

/** The most bytes a pack's trailer takes with `count` entries. */
export function packTrailerBound(count: number, sealed: boolean): number {
  const table = count * PACK_ENTRY + 4;
  return (sealed ? table + SEAL_OVERHEAD + 4 : table) + PACK_MAGIC.length;
}

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
 * by the caller), so that building a pack allocates nothing per blob. The trailer goes
 * into the same buffer when there is room for it (fitsWithTrailer keeps it), so that the
 * pack is one piece to store, never copied.
 */
export class PackBuilder {
  readonly entries: PackEntry[] = [];
  size = 0;

  constructor(readonly buffer: Buffer, private readonly objects: ObjectCodec = PLAIN_OBJECTS) {}

  get capacity(): number {
    return this.buffer.length;
  }

  fits(length: number): boolean {
    return this.size + length <= this.buffer.length;
  }

  /** Whether a blob fits with room left for the trailer, so that the finished pack is one piece of the buffer. */
  fitsWithTrailer(length: number): boolean {
    return this.size + length + packTrailerBound(this.entries.length + 1, this.objects.sealed) <= this.buffer.length;
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
    const table = Buffer.alloc(this.entries.length * PACK_ENTRY + 4);
    let o = 0;
    for (const e of this.entries) {
      e.digest.copy(table, o); o += DIGEST_LENGTH;
      table.writeUInt8(e.type, o++);
      table.writeUInt8(e.compression, o++);
      table.writeUInt32LE(e.length, o); o += 4;
      table.writeUInt32LE(e.rawLength, o); o += 4;
    }
    table.writeUInt32LE(this.entries.length, o);
    let trailer: Buffer;
    if (this.objects.sealed) {
      const sealed = this.objects.seal(PACK_TABLE_OBJECT, table);
      trailer = Buffer.concat([sealed, Buffer.alloc(4), SEALED_PACK_MAGIC]);
      trailer.writeUInt32LE(sealed.length, sealed.length);
    } else {
      trailer = Buffer.concat([table, PACK_MAGIC]);
    }
    const end = this.size + trailer.length;
    let parts: Buffer[];
    if (end <= this.buffer.length) {
      trailer.copy(this.buffer, this.size);
      parts = [this.buffer.subarray(0, end)];
    } else {
      parts = [this.buffer.subarray(0, this.size), trailer];
    }
    const hash = createHash('sha256');
    for (const p of parts) hash.update(p);
    return { id: hash.digest('hex'), parts, size: end, entries: this.entries };
  }
}

/** Reads the entry table at the end of a whole pack file (opening it through `objects` in an encrypted repository). */
export function decodePackTrailer(pack: Buffer, name: string, objects: ObjectCodec = PLAIN_OBJECTS): PackEntry[] {
  const damaged = (why: string) => new RepositoryDamagedError(`reading pack ${name} failed: ${why}`);
  const magic = pack.length >= 4 + PACK_MAGIC.length ? pack.subarray(pack.length - PACK_MAGIC.length) : undefined;
  let table: Buffer;
  let tableStart: number;
  if (magic?.equals(PACK_MAGIC) && !objects.sealed) {
    const count = pack.readUInt32LE(pack.length - PACK_MAGIC.length - 4);
    tableStart = pack.length - PACK_MAGIC.length - 4 - count * PACK_ENTRY;
    if (tableStart < 0) throw damaged(`trailer claims ${count} blobs, more than the file holds`);
    table = pack.subarray(tableStart, pack.length - PACK_MAGIC.length);
  } else if (magic?.equals(SEALED_PACK_MAGIC) && objects.sealed) {
    const sealedLength = pack.readUInt32LE(pack.length - PACK_MAGIC.length - 4);
    tableStart = pack.length - PACK_MAGIC.length - 4 - sealedLength;
    if (tableStart < 0) throw damaged(`trailer claims ${sealedLength} bytes, more than the file holds`);
    table = objects.open(`pack ${name}`, PACK_TABLE_OBJECT, pack.subarray(tableStart, tableStart + sealedLength));
  } else {
    throw damaged('no pack trailer of this repository (file truncated, not a pack, or from a repository encrypted otherwise)');
  }
  const count = table.readUInt32LE(table.length - 4);
  if (count * PACK_ENTRY + 4 !== table.length) throw damaged(`table of ${table.length} bytes does not hold ${count} entries`);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (let i = 0, o = 0; i < count; i++, o += PACK_ENTRY) {
    const digest = Buffer.from(table.subarray(o, o + DIGEST_LENGTH));
    const type = table.readUInt8(o + DIGEST_LENGTH);
    const compression = table.readUInt8(o + DIGEST_LENGTH + 1);
    const length = table.readUInt32LE(o + DIGEST_LENGTH + 2);
    const rawLength = table.readUInt32LE(o + 38);
    if (type > 1 || compression > 1) throw damaged(`blob ${toHex(digest)} has unknown type ${type} or compression ${compression}`);
    entries.push({ digest, type: type as BlobType, compression: compression as Compression, offset, length, rawLength });
    offset += length;
  }
  if (offset !== tableStart) throw damaged(`blob lengths add up to ${offset} bytes, the data area holds ${tableStart}`);
  return entries;
}
