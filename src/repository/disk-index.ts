/**
 * A disk's index in one generation: the digest of every chunk, in disk order (ZERO_DIGEST
 * for chunks that are zeros or holes). It is stored as pieces of `indexPieceEntries`
 * digests, each piece a blob, so an unchanged stretch of a disk costs nothing new.
 *
 * In memory it is held piece by piece too, so that its cost follows the data, not the
 * disk's size (a 1 TiB disk has 4 M chunks: 128 MiB of digests, nearly all zero when the
 * disk is thin). Pieces are copy-on-write and shared: every all-zero piece of an empty index
 * is one buffer, identical stored pieces are read once, and a clone shares its original's
 * pieces until it changes them. An index opened lazily (openDiskIndex) knows only its
 * pieces' ids until loadPieces reads them; the backup stores each new piece as soon as it is
 * complete (storeIndexPiece) and forgets its digests, keeping only its id.
 */
import { RepositoryDamagedError, VmbkpError } from '../errors.js';
import type { BlobWriter } from './pack-writer.js';
import { INDEX_PIECE_ENTRIES } from './config.js';
import { DIGEST_LENGTH, ZERO_DIGEST, toHex } from './digest.js';
import type { DiskRecord } from './generation.js';
import { BlobType } from './pack.js';
import type { Repository } from './repository.js';

/** A piece of an index in memory (see DiskIndex). */
export interface IndexPiece {
  /** The digests; undefined while not loaded (only its id is known). */
  buf: Buffer | undefined;
  /** The id of the stored blob holding exactly `buf`, when known. */
  id: string | undefined;
  /** May be shared (with another position or index): set() copies it first. */
  frozen: boolean;
  /** Known to be all zero digests. */
  zero: boolean;
}

/** A bug in vmbkp, not a problem of the repository. */
const internal = (message: string) => new VmbkpError('INTERNAL', message);

let zeros = Buffer.alloc(INDEX_PIECE_ENTRIES * DIGEST_LENGTH);
function allZero(buf: Buffer): boolean {
  if (zeros.length < buf.length) zeros = Buffer.alloc(buf.length);
  return buf.equals(zeros.subarray(0, buf.length));
}

export class DiskIndex {
  readonly count: number;
  readonly pieceCount: number;
  private readonly pieces: IndexPiece[];

  /** An index over `digests` (taken, not copied). */
  constructor(readonly size: number, readonly chunkSize: number, digests: Buffer | IndexPiece[], readonly pieceEntries: number = INDEX_PIECE_ENTRIES) {
    this.count = Math.ceil(size / chunkSize);
    this.pieceCount = Math.ceil(this.count / pieceEntries);
    if (Array.isArray(digests)) {
      if (digests.length !== this.pieceCount) throw new RangeError('piece count does not match disk size');
      this.pieces = digests;
      return;
    }
    if (digests.length !== this.count * DIGEST_LENGTH) throw new RangeError('index length does not match disk size');
    this.pieces = [];
    const per = pieceEntries * DIGEST_LENGTH;
    for (let o = 0; o < digests.length; o += per) this.pieces.push({ buf: digests.subarray(o, o + per), id: undefined, frozen: false, zero: false });
  }

  /** All zero: every full piece is one shared buffer. */
  static empty(size: number, chunkSize: number, pieceEntries: number = INDEX_PIECE_ENTRIES): DiskIndex {
    const count = Math.ceil(size / chunkSize);
    const n = Math.ceil(count / pieceEntries);
    const full: IndexPiece = { buf: Buffer.alloc(pieceEntries * DIGEST_LENGTH), id: undefined, frozen: true, zero: true };
    const pieces: IndexPiece[] = [];
    for (let p = 0; p < n; p++) {
      const entries = Math.min(pieceEntries, count - p * pieceEntries);
      pieces.push(entries === pieceEntries ? full : { buf: Buffer.alloc(entries * DIGEST_LENGTH), id: undefined, frozen: true, zero: true });
    }
    return new DiskIndex(size, chunkSize, pieces, pieceEntries);
  }

  /** Entries (chunks) of piece p. */
  pieceLength(p: number): number {
    return Math.min(this.pieceEntries, this.count - p * this.pieceEntries);
  }

  private loaded(i: number): { buf: Buffer; o: number } {
    const p = Math.floor(i / this.pieceEntries);
    const piece = this.pieces[p];
    if (!piece?.buf) throw internal(`disk index: chunk ${i} is in piece ${p}, which is not loaded`);
    return { buf: piece.buf, o: (i - p * this.pieceEntries) * DIGEST_LENGTH };
  }

  get(i: number): Buffer {
    const { buf, o } = this.loaded(i);
    return buf.subarray(o, o + DIGEST_LENGTH);
  }

  set(i: number, digest: Uint8Array): void {
    const p = Math.floor(i / this.pieceEntries);
    const o = (i - p * this.pieceEntries) * DIGEST_LENGTH;
    let piece = this.pieces[p]!;
    if (!piece.buf) throw internal(`disk index: chunk ${i} is in piece ${p}, which is not loaded`);
    // Writing what is there already keeps a shared piece shared (a hole stays the one zero piece).
    if (piece.buf.compare(digest, 0, DIGEST_LENGTH, o, o + DIGEST_LENGTH) === 0) return;
    if (piece.frozen) {
      piece = { buf: Buffer.from(piece.buf), id: undefined, frozen: false, zero: false };
      this.pieces[p] = piece;
    }
    piece.buf!.set(digest, o);
    piece.id = undefined;
    piece.zero = false;
  }

  isZero(i: number): boolean {
    const p = Math.floor(i / this.pieceEntries);
    if (this.pieces[p]?.zero) return true;
    return ZERO_DIGEST.equals(this.get(i));
  }

  chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  /** Piece p's digests are all zero (known without reading them for an empty index's pieces). */
  isZeroPiece(p: number): boolean {
    const piece = this.pieces[p]!;
    if (piece.zero) return true;
    if (!piece.buf) return false;
    piece.zero = allZero(piece.buf);
    return piece.zero;
  }

  isLoaded(p: number): boolean {
    return this.pieces[p]!.buf !== undefined;
  }

  /** The stored id of piece p, when known. */
  pieceId(p: number): string | undefined {
    return this.pieces[p]!.id;
  }

  /** Piece p's digests (loaded), to read only. */
  pieceDigests(p: number): Buffer {
    const b = this.pieces[p]!.buf;
    if (!b) throw internal(`disk index: piece ${p} is not loaded`);
    return b;
  }

  /** Gives an unloaded piece its digests (read from the blob of its id). */
  fill(p: number, buf: Buffer): void {
    const piece = this.pieces[p]!;
    if (buf.length !== this.pieceLength(p) * DIGEST_LENGTH) throw new RangeError('piece length does not match');
    this.pieces[p] = { buf, id: piece.id, frozen: true, zero: false };
  }

  /**
   * Forgets piece p's digests, keeping its id (it must have one: stored, or read from the
   * repository); loadPieces reads it again when needed.
   */
  unload(p: number): void {
    const piece = this.pieces[p]!;
    if (piece.id === undefined) throw internal(`disk index: piece ${p} has no stored id to unload to`);
    this.pieces[p] = { buf: undefined, id: piece.id, frozen: true, zero: piece.zero };
  }

  /** Records the id piece p is stored under. */
  setPieceId(p: number, id: string): void {
    this.pieces[p]!.id = id;
  }

  /** A copy that shares every piece with this one until either changes it. */
  clone(): DiskIndex {
    for (const piece of this.pieces) piece.frozen = true;
    return new DiskIndex(this.size, this.chunkSize, this.pieces.map((piece) => ({ ...piece })), this.pieceEntries);
  }

  /** Chunks that are not zero, in order; all-zero pieces are skipped without a look at each entry. */
  *dataChunks(): Generator<number> {
    for (let p = 0; p < this.pieceCount; p++) {
      if (this.isZeroPiece(p)) continue;
      const first = p * this.pieceEntries;
      for (let i = first; i < first + this.pieceLength(p); i++) if (!this.isZero(i)) yield i;
    }
  }

  /** Zero chunks in loaded piece p. */
  zerosIn(p: number): number {
    if (this.isZeroPiece(p)) return this.pieceLength(p);
    const buf = this.pieceDigests(p);
    let n = 0;
    for (let o = 0; o < buf.length; o += DIGEST_LENGTH) if (ZERO_DIGEST.equals(buf.subarray(o, o + DIGEST_LENGTH))) n++;
    return n;
  }

  /** Every digest as one buffer (for tests and small disks: it costs 32 bytes per chunk). */
  get digests(): Buffer {
    return Buffer.concat(this.pieces.map((_, p) => this.pieceDigests(p)));
  }
}

/**
 * Piece ids belong to the repository the index was read from or stored in (ids are keyed
 * per repository): an index is stored only into that one (copies build a new index).
 *
 * Stores piece p of the index (unless the repository or this writer has it) and records its
 * id; returns the bytes this added. The index's pieces must be the repository's size.
 */
export async function storeIndexPiece(repo: Repository, writer: BlobWriter, index: DiskIndex, p: number): Promise<number> {
  if (index.pieceEntries !== repo.config.indexPieceEntries) throw internal(`disk index pieces of ${index.pieceEntries} entries, the repository's are ${repo.config.indexPieceEntries}`);
  const known = index.pieceId(p);
  if (known !== undefined) return 0;
  const piece = index.pieceDigests(p);
  const digest = repo.codec.id(piece);
  const hex = toHex(digest);
  index.setPieceId(p, hex);
  if (writer.has(hex)) return 0;
  const { added, ready } = writer.addBlob(digest, BlobType.IndexPiece, repo.codec.encode(digest, BlobType.IndexPiece, Buffer.from(piece)), piece.length);
  await ready;
  return added;
}

/**
 * Stores the index as pieces, encoded with the repository's codec (its default compression
 * level); returns their digests and the bytes this added. Pieces with a known id (stored
 * already, or unchanged from the generation they were read from) are not stored again.
 */
export async function storeDiskIndex(repo: Repository, writer: BlobWriter, index: DiskIndex): Promise<{ pieces: string[]; bytesStored: number }> {
  if (index.pieceEntries !== repo.config.indexPieceEntries) {
    // An index cut otherwise (none today): re-cut as the repository's.
    return storeDiskIndex(repo, writer, new DiskIndex(index.size, index.chunkSize, index.digests, repo.config.indexPieceEntries));
  }
  const pieces: string[] = [];
  let bytesStored = 0;
  for (let p = 0; p < index.pieceCount; p++) {
    bytesStored += await storeIndexPiece(repo, writer, index, p);
    pieces.push(index.pieceId(p)!);
  }
  return { pieces, bytesStored };
}

/**
 * A disk's index with no piece read yet (loadPieces reads them), when its pieces have the
 * repository's layout; else the whole index read (loadDiskIndex).
 */
export async function openDiskIndex(repo: Repository, disk: DiskRecord, what: string): Promise<DiskIndex> {
  const entries = repo.config.indexPieceEntries;
  const count = Math.ceil(disk.size / disk.chunkSize);
  if (disk.index.length !== Math.ceil(count / entries)) return loadDiskIndex(repo, disk, what);
  return new DiskIndex(disk.size, disk.chunkSize, disk.index.map((id) => ({ buf: undefined, id, frozen: true, zero: false })), entries);
}

/** Reads the unloaded pieces of `index` that hold chunks [first, end), checking every piece against its digest. */
export async function loadPieces(repo: Repository, index: DiskIndex, first: number, end: number, what: string): Promise<void> {
  if (end <= first) return;
  const from = Math.floor(first / index.pieceEntries);
  const to = Math.floor((end - 1) / index.pieceEntries);
  for (let p = from; p <= to; p++) {
    if (index.isLoaded(p)) continue;
    const buf = await repo.readBlob(index.pieceId(p)!, what);
    if (index.isLoaded(p)) continue; // a concurrent caller read it meanwhile
    if (buf.length !== index.pieceLength(p) * DIGEST_LENGTH) {
      throw new RepositoryDamagedError(`${what}: index piece ${p} holds ${Math.floor(buf.length / DIGEST_LENGTH)} chunks, ${index.pieceLength(p)} expected for a disk of ${index.size} bytes`);
    }
    index.fill(p, buf);
  }
}

/**
 * Calls `fn` with each piece of an index that is not all zero, in order, reading it first
 * and forgetting it after unless it was loaded before: one piece in memory at a time. An
 * all-zero piece is read once (they share one id) and goes to `onZero` instead.
 */
export async function forEachPiece(repo: Repository, index: DiskIndex, what: string,
  fn: (p: number, first: number) => void | Promise<void>, onZero?: (p: number, first: number) => void | Promise<void>): Promise<void> {
  let zeroId: string | undefined;
  for (let p = 0; p < index.pieceCount; p++) {
    const first = p * index.pieceEntries;
    const id = index.pieceId(p);
    if (id !== undefined && id === zeroId && !index.isLoaded(p)) { await onZero?.(p, first); continue; }
    const wasLoaded = index.isLoaded(p);
    if (!wasLoaded) await loadPieces(repo, index, first, first + 1, what);
    if (index.isZeroPiece(p)) {
      if (id !== undefined && index.pieceLength(p) === index.pieceEntries) zeroId = id;
      await onZero?.(p, first);
    } else {
      await fn(p, first);
    }
    if (!wasLoaded) index.unload(p);
  }
}

/** Reads a disk's index back whole, checking every piece against its digest; identical pieces are read once and shared. */
export async function loadDiskIndex(repo: Repository, disk: DiskRecord, what: string): Promise<DiskIndex> {
  const entries = repo.config.indexPieceEntries;
  const count = Math.ceil(disk.size / disk.chunkSize);
  const byId = new Map<string, Buffer>();
  const parts: Buffer[] = [];
  for (const id of disk.index) {
    let b = byId.get(id);
    if (!b) { b = await repo.readBlob(id, what); byId.set(id, b); }
    parts.push(b);
  }
  const laidOut = parts.length === Math.ceil(count / entries)
    && parts.every((b, p) => b.length === Math.min(entries, count - p * entries) * DIGEST_LENGTH);
  if (laidOut) {
    // One piece object per id: what is learnt of a piece (that it is all zero) is learnt once.
    const pieces = new Map<string, IndexPiece>();
    return new DiskIndex(disk.size, disk.chunkSize, disk.index.map((id, p) => {
      let piece = pieces.get(id);
      if (!piece) { piece = { buf: parts[p]!, id, frozen: true, zero: false }; pieces.set(id, piece); }
      return piece;
    }), entries);
  }
  const digests = Buffer.concat(parts);
  const expected = count * DIGEST_LENGTH;
  if (digests.length !== expected) {
    throw new RepositoryDamagedError(`${what}: index holds ${digests.length / DIGEST_LENGTH} chunks, a disk of ${disk.size} bytes needs ${expected / DIGEST_LENGTH}`);
  }
  return new DiskIndex(disk.size, disk.chunkSize, digests, entries);
}
