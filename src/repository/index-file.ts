/**
 * Index files say which pack holds each blob. A backup writes one after its packs are
 * durable; gc rewrites them. The file is named by the SHA-256 of its content.
 *
 *   "VMBKIDX1" | u32 packCount | packCount × packId[32]
 *   | u32 entryCount | entryCount × (digest[32] packNo:u32 offset:u32 length:u32 rawLength:u32 type:u8 compression:u8)
 */
import { RepositoryDamagedError } from '../errors.js';
import { DIGEST_LENGTH, toHex } from './digest.js';
import type { BlobType, Compression, PackEntry } from './pack.js';

export const INDEX_MAGIC = Buffer.from('VMBKIDX1', 'latin1');
const ENTRY = DIGEST_LENGTH + 4 * 4 + 2;

export interface BlobLocation {
  readonly pack: string;
  readonly type: BlobType;
  readonly compression: Compression;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

export interface IndexedPack {
  readonly id: string;
  readonly entries: readonly PackEntry[];
}

export function encodeIndexFile(packs: readonly IndexedPack[]): Buffer {
  const count = packs.reduce((n, p) => n + p.entries.length, 0);
  const buf = Buffer.alloc(INDEX_MAGIC.length + 4 + packs.length * DIGEST_LENGTH + 4 + count * ENTRY);
  let o = INDEX_MAGIC.copy(buf, 0);
  o = buf.writeUInt32LE(packs.length, o);
  for (const p of packs) o += Buffer.from(p.id, 'hex').copy(buf, o);
  o = buf.writeUInt32LE(count, o);
  packs.forEach((p, packNo) => {
    for (const e of p.entries) {
      o += e.digest.copy(buf, o);
      o = buf.writeUInt32LE(packNo, o);
      o = buf.writeUInt32LE(e.offset, o);
      o = buf.writeUInt32LE(e.length, o);
      o = buf.writeUInt32LE(e.rawLength, o);
      o = buf.writeUInt8(e.type, o);
      o = buf.writeUInt8(e.compression, o);
    }
  });
  return buf;
}

/** Calls `add` for every blob the index file lists (checked first, as a whole, by indexFileTables). */
export function decodeIndexFile(buf: Buffer, name: string, add: (digestHex: string, loc: BlobLocation) => void): string[] {
  const { packs: table, entries, packCount, count } = indexFileTables(buf, name);
  const packs: string[] = [];
  for (let i = 0; i < packCount; i++) packs.push(toHex(table.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)));
  for (let i = 0, o = 0; i < count; i++, o += ENTRY) {
    add(toHex(entries.subarray(o, o + DIGEST_LENGTH)), {
      pack: packs[entries.readUInt32LE(o + DIGEST_LENGTH)]!,
      offset: entries.readUInt32LE(o + 36),
      length: entries.readUInt32LE(o + 40),
      rawLength: entries.readUInt32LE(o + 44),
      type: entries.readUInt8(o + 48) as BlobType,
      compression: entries.readUInt8(o + 49) as Compression,
    });
  }
  return packs;
}

/** An index file's pack table and entry table as stored, checked (the lookup builder copies entries as they are). */
export function indexFileTables(buf: Buffer, name: string): { packs: Buffer; entries: Buffer; packCount: number; count: number } {
  const damaged = (why: string) => new RepositoryDamagedError(`reading index file ${name} failed: ${why}`);
  if (buf.length < INDEX_MAGIC.length + 8 || !buf.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) {
    throw damaged('not an index file (bad magic)');
  }
  let o = INDEX_MAGIC.length;
  const packCount = buf.readUInt32LE(o); o += 4;
  if (o + packCount * DIGEST_LENGTH + 4 > buf.length) throw damaged('truncated pack table');
  const packs = buf.subarray(o, o + packCount * DIGEST_LENGTH);
  o += packCount * DIGEST_LENGTH;
  const count = buf.readUInt32LE(o); o += 4;
  if (o + count * ENTRY !== buf.length) throw damaged(`entry table holds ${buf.length - o} bytes, ${count} entries need ${count * ENTRY}`);
  const entries = buf.subarray(o);
  for (let i = 0, e = 0; i < count; i++, e += ENTRY) {
    if (entries.readUInt32LE(e + DIGEST_LENGTH) >= packCount || entries[e + 48]! > 1 || entries[e + 49]! > 1) throw damaged(`entry ${i} is malformed`);
  }
  return { packs, entries, packCount, count };
}
