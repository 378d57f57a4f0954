/**
 * The lookup file: a local, derived copy of the repository's index, sorted by digest and
 * searched in place (pread), so that a lookup costs one small read whatever the number of
 * blobs. It is a cache (lookup-cache.ts places it, lookup-build.ts writes it): never stored in
 * the repository, rebuilt from the index files whenever it is missing, stale or corrupt.
 *
 *   header (4096 bytes): "VMBKLUP1" u32 version u32 fanoutBits u32 entryCount u32 packCount
 *     u32 coverCount f64 packsOffset f64 coversOffset f64 fanoutOffset f64 fileLength
 *     repositoryId[64, ascii, NUL-padded] u32 crc32(header fields, covers, fanout)
 *   entries at 4096: entryCount × (digest[32] packNo:u32 offset:u32 length:u32 rawLength:u32
 *     type:u8 compression:u8 crc32:u32), sorted by digest, one per digest
 *   packs: packCount × (packId[32] crc32:u32)
 *   covers: coverCount × indexFileId[32], sorted: the index files merged in
 *   fanout: (2^fanoutBits + 1) × u32: entries whose digest's top fanoutBits bits are below i
 *
 * Integers are little-endian. An entry is an index file entry (index-file.ts) with the pack
 * number rebased onto this file's pack table, plus a CRC-32 of its 50 bytes, checked on
 * every entry a lookup or a scan reads.
 */
import fs from 'node:fs';
import { IoError } from '../errors.js';
import { DIGEST_LENGTH, toHex } from './digest.js';
import type { BlobLocation } from './index-file.js';
import type { BlobType, Compression } from './pack.js';

export const LOOKUP_MAGIC = Buffer.from('VMBKLUP1', 'latin1');
export const LOOKUP_VERSION = 1;
export const HEADER_SIZE = 4096;
/** An index file entry (50 bytes) and its CRC-32. */
export const ENTRY_SIZE = 54;
export const ENTRY_BODY = 50;
export const PACK_SIZE = DIGEST_LENGTH + 4;
const ID_FIELD = 64;
/** Buckets of a lookup read at once, kept for the next lookups (a small page cache). */
const BUCKET_CACHE = 512;
/** Largest pack table a scan holds in memory (else it reads each entry's pack id). */
const SCAN_PACK_TABLE = 64 << 20;

/** The lookup file is unusable: the caller removes it and rebuilds it from the repository. */
export class LookupCorruptError extends IoError {
  constructor(readonly path: string, why: string) {
    super(`the local index cache ${path} is corrupt (${why}): it is removed and rebuilt from the repository's index files`);
  }
}

export interface LookupHeader {
  readonly fanoutBits: number;
  readonly entryCount: number;
  readonly packCount: number;
  readonly coverCount: number;
  readonly packsOffset: number;
  readonly coversOffset: number;
  readonly fanoutOffset: number;
  readonly fileLength: number;
  readonly repositoryId: string;
}

/** Fanout bits for `count` entries: buckets of about 48 entries (one read of ~2.6 KiB), 2^8 to 2^22 of them. */
export function fanoutBitsFor(count: number): number {
  return Math.min(22, Math.max(8, Math.ceil(Math.log2(Math.max(1, count / 48)))));
}

/** The top `bits` bits of a digest (bits ≤ 24). */
export function bucketOf(digest: Buffer, at: number, bits: number): number {
  return ((digest[at]! << 16) | (digest[at + 1]! << 8) | digest[at + 2]!) >>> (24 - bits);
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (zlib's) of buf[from, to), computed in place: zlib.crc32 on a subarray costs ~10× more per 50-byte entry. */
export function crc32(buf: Uint8Array, from = 0, to = buf.length, seed = 0): number {
  let c = ~seed;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function entryCrc(buf: Buffer, at: number): number {
  return crc32(buf, at, at + ENTRY_BODY);
}

/** The header's bytes, with its CRC over the header fields, the covers and the fanout. */
export function encodeHeader(h: LookupHeader, covers: Buffer, fanout: Buffer): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  let o = LOOKUP_MAGIC.copy(buf, 0);
  o = buf.writeUInt32LE(LOOKUP_VERSION, o);
  o = buf.writeUInt32LE(h.fanoutBits, o);
  o = buf.writeUInt32LE(h.entryCount, o);
  o = buf.writeUInt32LE(h.packCount, o);
  o = buf.writeUInt32LE(h.coverCount, o);
  o = buf.writeDoubleLE(h.packsOffset, o);
  o = buf.writeDoubleLE(h.coversOffset, o);
  o = buf.writeDoubleLE(h.fanoutOffset, o);
  o = buf.writeDoubleLE(h.fileLength, o);
  buf.write(h.repositoryId.slice(0, ID_FIELD), o, 'latin1');
  o += ID_FIELD;
  buf.writeUInt32LE(crc32(fanout, 0, fanout.length, crc32(covers, 0, covers.length, crc32(buf, 0, o))), o);
  return buf;
}

function decodeHeader(buf: Buffer, path: string): { header: LookupHeader; crcAt: number; crc: number } {
  const bad = (why: string) => new LookupCorruptError(path, why);
  if (buf.length < HEADER_SIZE || !buf.subarray(0, LOOKUP_MAGIC.length).equals(LOOKUP_MAGIC)) throw bad('bad magic');
  let o = LOOKUP_MAGIC.length;
  const version = buf.readUInt32LE(o); o += 4;
  if (version !== LOOKUP_VERSION) throw bad(`version ${version}, this vmbkp reads ${LOOKUP_VERSION}`);
  const fanoutBits = buf.readUInt32LE(o); o += 4;
  const entryCount = buf.readUInt32LE(o); o += 4;
  const packCount = buf.readUInt32LE(o); o += 4;
  const coverCount = buf.readUInt32LE(o); o += 4;
  const packsOffset = buf.readDoubleLE(o); o += 8;
  const coversOffset = buf.readDoubleLE(o); o += 8;
  const fanoutOffset = buf.readDoubleLE(o); o += 8;
  const fileLength = buf.readDoubleLE(o); o += 8;
  const repositoryId = buf.toString('latin1', o, o + ID_FIELD).replace(/\0+$/, ''); o += ID_FIELD;
  const header = { fanoutBits, entryCount, packCount, coverCount, packsOffset, coversOffset, fanoutOffset, fileLength, repositoryId };
  if (fanoutBits < 8 || fanoutBits > 24) throw bad(`fanout of ${fanoutBits} bits`);
  if (packsOffset !== HEADER_SIZE + entryCount * ENTRY_SIZE || coversOffset !== packsOffset + packCount * PACK_SIZE
    || fanoutOffset !== coversOffset + coverCount * DIGEST_LENGTH || fileLength !== fanoutOffset + ((2 ** fanoutBits) + 1) * 4) {
    throw bad('its sections do not add up');
  }
  return { header, crcAt: o, crc: buf.readUInt32LE(o) };
}

/** An open lookup file. Lookups are synchronous preads: callers look blobs up in tight loops. */
export class LookupFile {
  /** Index file names (index/<id>) it covers. */
  readonly covers: ReadonlySet<string>;
  private readonly buckets = new Map<number, Buffer>();

  private constructor(readonly path: string, private readonly fd: number, readonly header: LookupHeader, private readonly fanout: Uint32Array, covers: Set<string>) {
    this.covers = covers;
  }

  /**
   * Opens and checks the file: header, section sizes against the file's length, the CRC of
   * the header, covers and fanout, the fanout's order. Entries are checked as they are read.
   */
  static open(path: string, repositoryId: string): LookupFile {
    const fd = fs.openSync(path, 'r');
    try {
      const head = Buffer.alloc(HEADER_SIZE);
      fs.readSync(fd, head, 0, HEADER_SIZE, 0);
      const { header: h, crcAt, crc } = decodeHeader(head, path);
      if (h.repositoryId !== repositoryId) throw new LookupCorruptError(path, `it is the cache of repository ${h.repositoryId}`);
      if (fs.fstatSync(fd).size !== h.fileLength) throw new LookupCorruptError(path, 'its length is not what its header says (truncated)');
      const covers = readAt(fd, h.coversOffset, h.coverCount * DIGEST_LENGTH);
      const fanoutBytes = readAt(fd, h.fanoutOffset, h.fileLength - h.fanoutOffset);
      if (crc32(fanoutBytes, 0, fanoutBytes.length, crc32(covers, 0, covers.length, crc32(head, 0, crcAt))) !== crc) throw new LookupCorruptError(path, 'header checksum mismatch');
      const fanout = new Uint32Array(fanoutBytes.buffer.slice(fanoutBytes.byteOffset, fanoutBytes.byteOffset + fanoutBytes.length));
      for (let i = 1; i < fanout.length; i++) if (fanout[i]! < fanout[i - 1]!) throw new LookupCorruptError(path, 'fanout out of order');
      if (fanout[0] !== 0 || fanout[fanout.length - 1] !== h.entryCount) throw new LookupCorruptError(path, 'fanout does not cover its entries');
      const names = new Set<string>();
      for (let o = 0; o < covers.length; o += DIGEST_LENGTH) names.add(`index/${toHex(covers.subarray(o, o + DIGEST_LENGTH))}`);
      return new LookupFile(path, fd, h, fanout, names);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  get count(): number {
    return this.header.entryCount;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Where the blob is, or undefined when the file does not list it. */
  lookup(digest: Buffer): BlobLocation | undefined {
    const bucket = bucketOf(digest, 0, this.header.fanoutBits);
    const from = this.fanout[bucket]!, to = this.fanout[bucket + 1]!;
    if (from === to) return undefined;
    const entries = this.bucket(bucket, from, to);
    let lo = 0, hi = to - from - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = mid * ENTRY_SIZE;
      this.checkEntry(entries, at, from + mid);
      const c = entries.compare(digest, 0, DIGEST_LENGTH, at, at + DIGEST_LENGTH);
      if (c === 0) return this.location(entries, at);
      if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return undefined;
  }

  /** Every entry in digest order, read sequentially a few MiB at a time. */
  *entries(): Generator<[string, BlobLocation]> {
    const per = Math.floor((4 << 20) / ENTRY_SIZE);
    // The pack table is read whole for a scan when it is small enough (~36 bytes a pack, 1/64 of the entries' count).
    const packs = this.header.packCount * PACK_SIZE <= SCAN_PACK_TABLE ? readAt(this.fd, this.header.packsOffset, this.header.packCount * PACK_SIZE) : undefined;
    if (packs) for (let p = 0; p < this.header.packCount; p++) this.checkPack(packs, p * PACK_SIZE, p);
    for (let first = 0; first < this.count; first += per) {
      const n = Math.min(per, this.count - first);
      const buf = readAt(this.fd, HEADER_SIZE + first * ENTRY_SIZE, n * ENTRY_SIZE);
      for (let i = 0; i < n; i++) {
        const at = i * ENTRY_SIZE;
        this.checkEntry(buf, at, first + i);
        yield [buf.toString('hex', at, at + DIGEST_LENGTH), this.location(buf, at, packs)];
      }
    }
  }

  /** Raw entries [first, first + n), checked (for merging into a new file). */
  readEntries(first: number, n: number): Buffer {
    const buf = readAt(this.fd, HEADER_SIZE + first * ENTRY_SIZE, n * ENTRY_SIZE);
    for (let i = 0; i < n; i++) this.checkEntry(buf, i * ENTRY_SIZE, first + i);
    return buf;
  }

  /** The first entry whose digest's top byte is `b` or more. */
  firstWithTopByte(b: number): number {
    return b >= 256 ? this.count : this.fanout[b << (this.header.fanoutBits - 8)]!;
  }

  /** Raw pack table [first, first + n) (for merging into a new file). */
  readPacks(first: number, n: number): Buffer {
    return readAt(this.fd, this.header.packsOffset + first * PACK_SIZE, n * PACK_SIZE);
  }

  private bucket(bucket: number, from: number, to: number): Buffer {
    let buf = this.buckets.get(bucket);
    if (buf) {
      this.buckets.delete(bucket);
    } else {
      buf = readAt(this.fd, HEADER_SIZE + from * ENTRY_SIZE, (to - from) * ENTRY_SIZE);
      if (this.buckets.size >= BUCKET_CACHE) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(bucket, buf);
    return buf;
  }

  private checkPack(buf: Buffer, at: number, n: number): void {
    if (crc32(buf, at, at + DIGEST_LENGTH) !== buf.readUInt32LE(at + DIGEST_LENGTH)) throw new LookupCorruptError(this.path, `pack ${n} checksum mismatch`);
  }

  private checkEntry(buf: Buffer, at: number, n: number): void {
    if (entryCrc(buf, at) !== buf.readUInt32LE(at + ENTRY_BODY)) throw new LookupCorruptError(this.path, `entry ${n} checksum mismatch`);
  }

  private location(buf: Buffer, at: number, packs?: Buffer): BlobLocation {
    const packNo = buf.readUInt32LE(at + 32);
    if (packNo >= this.header.packCount) throw new LookupCorruptError(this.path, `pack number ${packNo} out of range`);
    // A scan's pack table was checked whole before; a lookup checks the one pack id it reads.
    let pack: Buffer, at0 = 0;
    if (packs) {
      pack = packs; at0 = packNo * PACK_SIZE;
    } else {
      pack = readAt(this.fd, this.header.packsOffset + packNo * PACK_SIZE, PACK_SIZE);
      this.checkPack(pack, 0, packNo);
    }
    return {
      pack: pack.toString('hex', at0, at0 + DIGEST_LENGTH),
      offset: buf.readUInt32LE(at + 36),
      length: buf.readUInt32LE(at + 40),
      rawLength: buf.readUInt32LE(at + 44),
      type: buf.readUInt8(at + 48) as BlobType,
      compression: buf.readUInt8(at + 49) as Compression,
    };
  }
}

export function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new IoError(`reading the local index cache failed: it ends before byte ${position + length}`);
    done += n;
  }
  return buf;
}
