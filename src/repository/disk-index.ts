/**
 * A disk's index in one generation: the digest of every chunk, in disk order (ZERO_DIGEST
 * for chunks that are zeros or holes). It is stored as pieces of `indexPieceEntries`
 * digests, each piece a blob, so an unchanged stretch of a disk costs nothing new.
 */
import { RepositoryDamagedError } from '../errors.js';
import type { BlobWriter } from './pack-writer.js';
import { DIGEST_LENGTH, ZERO_DIGEST, toHex } from './digest.js';
import type { DiskRecord } from './generation.js';
import { BlobType } from './pack.js';
import type { Repository } from './repository.js';

export class DiskIndex {
  readonly count: number;

  constructor(readonly size: number, readonly chunkSize: number, readonly digests: Buffer) {
    this.count = Math.ceil(size / chunkSize);
    if (digests.length !== this.count * DIGEST_LENGTH) throw new RangeError('index length does not match disk size');
  }

  static empty(size: number, chunkSize: number): DiskIndex {
    return new DiskIndex(size, chunkSize, Buffer.alloc(Math.ceil(size / chunkSize) * DIGEST_LENGTH));
  }

  get(i: number): Buffer {
    return this.digests.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH);
  }

  set(i: number, digest: Uint8Array): void {
    this.digests.set(digest, i * DIGEST_LENGTH);
  }

  isZero(i: number): boolean {
    return ZERO_DIGEST.equals(this.get(i));
  }

  chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }
}

/**
 * Stores the index as pieces, encoded with the repository's codec (its default compression
 * level); returns their digests and the bytes this added.
 */
export async function storeDiskIndex(repo: Repository, writer: BlobWriter, index: DiskIndex): Promise<{ pieces: string[]; bytesStored: number }> {
  const per = repo.config.indexPieceEntries * DIGEST_LENGTH;
  const pieces: string[] = [];
  let bytesStored = 0;
  for (let o = 0; o < index.digests.length; o += per) {
    const piece = index.digests.subarray(o, o + per);
    const digest = repo.codec.id(piece);
    pieces.push(toHex(digest));
    if (writer.has(toHex(digest))) continue;
    const { added, ready } = writer.addBlob(digest, BlobType.IndexPiece, repo.codec.encode(digest, BlobType.IndexPiece, Buffer.from(piece)), piece.length);
    bytesStored += added;
    await ready;
  }
  return { pieces, bytesStored };
}

/** Reads a disk's index back, checking every piece against its digest. `what` names the disk for messages. */
export async function loadDiskIndex(repo: Repository, disk: DiskRecord, what: string): Promise<DiskIndex> {
  const parts: Buffer[] = [];
  for (const piece of disk.index) parts.push(await repo.readBlob(piece, what));
  const digests = Buffer.concat(parts);
  const expected = Math.ceil(disk.size / disk.chunkSize) * DIGEST_LENGTH;
  if (digests.length !== expected) {
    throw new RepositoryDamagedError(`${what}: index holds ${digests.length / DIGEST_LENGTH} chunks, a disk of ${disk.size} bytes needs ${expected / DIGEST_LENGTH}`);
  }
  return new DiskIndex(disk.size, disk.chunkSize, digests);
}
