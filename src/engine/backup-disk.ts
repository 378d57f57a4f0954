/**
 * Backs up one disk into the repository: extents → read → zero-detect → hash → compress →
 * store. Returns the disk's new index; the caller stores it and commits the generation.
 *
 *   full  reads every allocated chunk (only its allocated bytes, when the source reports allocation);
 *   diff  reads every allocated chunk, stores only those whose digest differs from the previous generation;
 *   incr  reads only the chunks covering the changed extents, the rest comes from the previous index.
 * In every mode a chunk the repository already holds is not stored again.
 */
import { InputError } from '../errors.js';
import { DiskIndex, loadPieces, storeIndexPiece } from '../repository/disk-index.js';
import type { DiskStats, BackupMode } from '../repository/generation.js';
import { BlobType } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';
import { DIGEST_LENGTH, ZERO_DIGEST, toHex } from '../repository/digest.js';
import { storedBound } from '../repository/blob-codec.js';
import type { DiskSource, Extent } from '../sources/types.js';
import type { ChunkPool } from '../repository/chunk-pool.js';
import type { BlobWriter } from '../repository/pack-writer.js';
import { type ChunkRange, checkExtents, chunkRanges, mergeExtents, segments } from './extents.js';
import { Mutex, runWindowed } from './window.js';

/** Bytes read per request: large enough for sequential throughput, small enough to spread over workers. */
const SEGMENT_BYTES = 4 * 1024 * 1024;

export interface Progress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface BackupDiskRequest {
  readonly repo: Repository;
  /** This job's writer (Repository.writer()). */
  readonly writer: BlobWriter;
  /** zstd level for this job's new chunks; the repository's codec decides without it. */
  readonly compressionLevel?: number;
  readonly pool: ChunkPool;
  readonly source: DiskSource;
  readonly mode: BackupMode;
  /**
   * The previous generation's index of this disk; required for diff and incr. It may be
   * opened lazily (openDiskIndex): only the pieces the backup touches are read.
   */
  readonly previous?: DiskIndex;
  /** Zero chunks in the previous generation (its stats), so that an incr need not read its untouched pieces to count them. */
  readonly previousZeroChunks?: number;
  /** Changed extents since the previous generation; required for incr. */
  readonly changed?: readonly Extent[];
  /**
   * A diff only: the changes the source reported for the same interval (CBT), to check
   * against what the full read finds — see BackupDiskResult.missedBytes.
   */
  readonly checkChanges?: readonly Extent[];
  /** Names the disk in messages ("disk sda of set web01"). */
  readonly what: string;
  readonly onProgress?: (p: Progress) => void;
}

export interface BackupDiskResult {
  /** The new index: the pieces the backup touched are stored already (storeDiskIndex stores the rest). */
  readonly index: DiskIndex;
  readonly stats: Omit<DiskStats, 'durationMs'>;
  /**
   * With `checkChanges`: bytes (whole chunks) that differ from the previous generation
   * but lie outside every reported change — what an incr would have missed.
   */
  readonly missedBytes?: number;
}

/** Bytes of the chunks that differ between `index` and `previous` and that no extent of `changes` touches. */
export function unreportedChanges(index: DiskIndex, previous: DiskIndex, changes: readonly Extent[]): number {
  return unreportedIn(index, previous, chunkRanges(changes, index.chunkSize), 0, index.count);
}

/** unreportedChanges over chunks [first, end) only, with the changes as sorted chunk ranges. */
function unreportedIn(index: DiskIndex, previous: DiskIndex, reported: readonly ChunkRange[], first: number, end: number): number {
  let missed = 0;
  let r = 0;
  for (let i = first; i < end; i++) {
    while (r < reported.length && reported[r]!.end <= i) r++;
    if (r < reported.length && reported[r]!.first <= i) continue;
    if (!index.get(i).equals(previous.get(i))) missed += index.chunkLength(i);
  }
  return missed;
}

/**
 * Reads [offset, offset+length) into `into`. With known data extents, only the parts that
 * hold data are read and the rest is zero-filled. Returns the bytes read from the source.
 */
async function readSegment(source: DiskSource, offset: number, length: number, into: Buffer, data: readonly Extent[] | undefined): Promise<number> {
  if (!data) {
    await source.read(offset, length, into.subarray(0, length));
    return length;
  }
  const end = offset + length;
  const parts: Extent[] = [];
  // Binary search for the first extent that ends after `offset`.
  let lo = 0, hi = data.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (data[mid]!.start + data[mid]!.length <= offset) lo = mid + 1; else hi = mid; }
  for (let i = lo; i < data.length && data[i]!.start < end; i++) {
    const s = Math.max(offset, data[i]!.start);
    const e = Math.min(end, data[i]!.start + data[i]!.length);
    if (e > s) parts.push({ start: s, length: e - s });
  }
  if (parts.length === 1 && parts[0]!.start === offset && parts[0]!.length === length) {
    await source.read(offset, length, into.subarray(0, length));
    return length;
  }
  // Zero only the gaps between the parts (filling whole segments showed up as 12 % of the main thread).
  let at = 0;
  for (const p of parts) { if (p.start - offset > at) into.fill(0, at, p.start - offset); at = p.start - offset + p.length; }
  if (at < length) into.fill(0, at, length);
  await Promise.all(parts.map((p) => source.read(p.start, p.length, into.subarray(p.start - offset, p.start - offset + p.length))));
  return parts.reduce((n, p) => n + p.length, 0);
}

export async function backupDisk(req: BackupDiskRequest): Promise<BackupDiskResult> {
  const { repo, pool, source, mode, previous } = req;
  const chunkSize = repo.config.chunkSize;
  const size = source.size;
  if (mode !== 'full' && !previous) throw new InputError(`${req.what}: ${mode} needs a previous generation`);
  if (previous && (previous.size !== size || previous.chunkSize !== chunkSize)) {
    throw new InputError(`${req.what}: the disk is ${size} bytes now, ${previous.size} in the previous generation; ${mode} needs the same size`);
  }

  let ranges: ChunkRange[];
  let index: DiskIndex;
  /** Where data is, when the source says so: only these bytes are read, the rest of a chunk is zeros. */
  let dataExtents: readonly Extent[] | undefined;
  if (mode === 'incr') {
    if (!req.changed) throw new InputError(`${req.what}: incr needs the changed extents (--changed) since the previous generation`);
    checkExtents(req.changed, size, `changed extents of ${req.what}`);
    ranges = chunkRanges(req.changed, chunkSize);
    // Shares the previous index's pieces; the ones the changes touch are read and copied.
    index = previous!.clone();
  } else {
    const allocated = await source.allocated(0, size);
    checkExtents(allocated, size, `allocation reported by ${source.description}`);
    ranges = chunkRanges(allocated, chunkSize);
    dataExtents = mergeExtents(allocated);
    index = DiskIndex.empty(size, chunkSize, repo.config.indexPieceEntries);
  }
  const per = index.pieceEntries;
  const writer = req.writer;
  const compareWith = mode === 'full' ? undefined : previous;
  if (previous && previous.pieceEntries !== per) throw new InputError(`${req.what}: the previous index is cut in pieces of ${previous.pieceEntries} chunks, the repository's are ${per}`);

  // The index is written piece by piece: a piece is stored (and its digests dropped) once
  // every chunk of it the backup reads is done, so memory follows the pieces in flight,
  // not the disk's size. `pending` counts those chunks per piece.
  const pending = new Int32Array(index.pieceCount);
  for (const r of ranges) {
    for (let p = Math.floor(r.first / per); p * per < r.end; p++) pending[p]! += Math.min(r.end, (p + 1) * per) - Math.max(r.first, p * per);
  }
  const touched = new Uint8Array(index.pieceCount);
  const loading = new Mutex();
  const reported = req.checkChanges && mode === 'diff' ? (checkExtents(req.checkChanges, size, `changed extents of ${req.what}`), chunkRanges(req.checkChanges, chunkSize)) : undefined;
  let missedBytes = 0;
  let indexBytes = 0;
  /** Zero chunks of the new index: start from the base's count, then per touched piece take its old count out and its new one in. */
  let zeros = mode === 'incr' ? (req.previousZeroChunks ?? await zeroChunks(repo, previous!, req.what)) : index.count;
  const what = `reading the index of ${req.what}`;
  const load = async (idx: DiskIndex, first: number, end: number) => {
    for (let p = Math.floor(first / per); p * per < end; p++) {
      if (idx.isLoaded(p)) continue;
      const unlock = await loading.lock();
      try {
        await loadPieces(repo, idx, p * per, p * per + 1, what);
        // An incr's index is a clone of the previous one: one read serves both.
        if (mode === 'incr' && idx === index && !previous!.isLoaded(p) && previous!.pieceId(p) === index.pieceId(p)) previous!.fill(p, index.pieceDigests(p));
      } finally {
        unlock();
      }
    }
  };
  /** Before a segment changes the index: its pieces read, and counted out of `zeros` once. */
  const begin = async (first: number, end: number) => {
    await load(index, first, end);
    if (compareWith) await load(compareWith, first, end);
    for (let p = Math.floor(first / per); p * per < end; p++) if (!touched[p]) { touched[p] = 1; zeros -= index.zerosIn(p); }
  };
  /** After a segment: pieces with no chunk left to read are complete, stored and dropped. */
  const finish = async (first: number, end: number) => {
    for (let p = Math.floor(first / per); p * per < end; p++) {
      pending[p]! -= Math.min(end, (p + 1) * per) - Math.max(first, p * per);
      if (pending[p] !== 0) continue;
      zeros += index.zerosIn(p);
      if (reported && compareWith) missedBytes += unreportedIn(index, compareWith, reported, p * per, p * per + index.pieceLength(p));
      indexBytes += await storeIndexPiece(repo, writer, index, p);
      index.unload(p);
      if (compareWith?.pieceId(p) !== undefined) compareWith.unload(p);
    }
  };
  const bytesTotal = ranges.reduce((n, r) => n + Math.min(size, r.end * chunkSize) - r.first * chunkSize, 0);
  const stats = { bytesRead: 0, bytesStored: 0, chunks: index.count, chunksZero: 0, chunksStored: 0 };
  let bytesDone = 0;
  const claimed = new Set<string>();
  const perSegment = Math.max(1, Math.floor(SEGMENT_BYTES / chunkSize));
  const segmentBytes = perSegment * chunkSize;
  // Segments in flight per worker: four for reads over a socket (NBD, https), which wait on
  // the server while the workers hash (two left them idle about a third of the time through
  // nbdkit); two for local files, which gain nothing from more (measured on the 2 GiB bench
  // image) and save 32 MiB of peak memory (a 1 GiB full backup peaked at 202–214 MiB with
  // four, 168 MiB with two, same time). Each slot is about 8 MiB.
  const window = pool.size * (source.local ? 2 : 4);
  const slots = await pool.createSlots(window, {
    input: segmentBytes, output: perSegment * storedBound(chunkSize), digests: perSegment * DIGEST_LENGTH,
  });

  try {
    await runWindowed(segments(ranges, perSegment), window, async (seg) => {
      const offset = seg.first * chunkSize;
      const length = Math.min(size, seg.end * chunkSize) - offset;
      await begin(seg.first, seg.end);
      const slot = await slots.acquire();
      try {
        const read = await readSegment(source, offset, length, slot.input, dataExtents);
        stats.bytesRead += read; // not `+= await`: that would add to a value read before the await
        bytesDone += length;
        await pool.hash(slot, length, chunkSize);
        const wanted: number[] = [];
        for (let c = 0; c < seg.end - seg.first; c++) {
          const pos = seg.first + c;
          const digest = slot.digests.subarray(c * DIGEST_LENGTH, (c + 1) * DIGEST_LENGTH);
          index.set(pos, digest);
          if (ZERO_DIGEST.equals(digest)) continue;
          if (compareWith && compareWith.get(pos).equals(digest)) continue;
          const hex = toHex(digest);
          if (claimed.has(hex) || writer.has(hex)) continue;
          claimed.add(hex);
          wanted.push(c);
        }
        for (const b of await pool.encode(slot, length, chunkSize, wanted, req.compressionLevel)) {
          const pos = seg.first + b.chunk;
          const data = (b.inOutput ? slot.output : slot.input).subarray(b.offset, b.offset + b.length);
          const { added, ready } = writer.addBlob(Buffer.from(index.get(pos)), BlobType.Chunk, { compression: b.compression, data }, index.chunkLength(pos));
          if (added > 0) stats.chunksStored++;
          stats.bytesStored += added;
          await ready;
        }
      } finally {
        slots.release(slot);
      }
      await finish(seg.first, seg.end);
      req.onProgress?.({ bytesDone, bytesTotal });
    });
  } finally {
    await pool.disposeSlots(slots);
  }

  if (reported && compareWith) {
    // Pieces the read never touched are all holes now: whatever the previous generation held there changed.
    for (let p = 0; p < index.pieceCount; p++) {
      if (touched[p]) continue;
      await load(compareWith, p * per, p * per + 1);
      if (!compareWith.isZeroPiece(p)) missedBytes += unreportedIn(index, compareWith, reported, p * per, p * per + index.pieceLength(p));
      if (compareWith.pieceId(p) !== undefined) compareWith.unload(p);
    }
  }
  stats.chunksZero = zeros;
  stats.bytesStored += indexBytes;
  if (reported) return { index, stats, missedBytes };
  return { index, stats };
}

/** Zero chunks of an index, read piece by piece (for a previous record without the count). */
async function zeroChunks(repo: Repository, index: DiskIndex, what: string): Promise<number> {
  let n = 0;
  for (let p = 0; p < index.pieceCount; p++) {
    const was = index.isLoaded(p);
    if (!was) await loadPieces(repo, index, p * index.pieceEntries, p * index.pieceEntries + 1, `reading the index of ${what}`);
    n += index.zerosIn(p);
    if (!was) index.unload(p);
  }
  return n;
}
