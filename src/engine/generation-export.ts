/**
 * One disk of one generation as an export: reads are answered from the repository, chunk
 * by chunk. Every chunk is decompressed and checked against its digest before any of its
 * bytes are used; a chunk that fails the check fails the read that needs it (the NBD
 * server answers EIO), and its bytes are never returned. Zero chunks read as zeros
 * without I/O.
 *
 * Decoded chunks are kept for a while (16 MiB), so that small sequential reads (a file
 * system mounted on the export reads 4 KiB at a time) do not read and decode a whole chunk
 * for every request; a chunk wanted by several requests at once is read once.
 *
 * With a ChunkPool, decompression and hashing run in its workers, as in a restore. Chunks
 * wait for one of a few worker slots; when a slot frees up, the oldest waiting chunk is
 * read together with the other waiting chunks stored near it in the same pack: one read
 * and one message for all of them. When reads are sequential (the chunk before was read
 * recently), the chunks stored right after the wanted one are read with it. Without a
 * pool (or for a blob larger than a chunk) chunks are read one by one on the calling
 * thread through Repository.readBlob.
 */
import { RepositoryDamagedError } from '../errors.js';
import { StateFlag } from '../nbd/constants.js';
import type { ExportBackend, ExportExtent } from '../nbd/export-backend.js';
import { storedBound } from '../repository/blob-codec.js';
import { missingBlobError, readBlobs } from '../repository/blob-read.js';
import type { DiskIndex } from '../repository/disk-index.js';
import { toHex } from '../repository/digest.js';
import type { BlobLocation } from '../repository/index-file.js';
import type { Repository } from '../repository/repository.js';
import type { ChunkPool, Slot, SlotSet } from '../repository/chunk-pool.js';
import { runWindowed } from './window.js';

/** Decoded chunks kept, in bytes (at least two chunks). */
const DEFAULT_CACHE_BYTES = 16 * 1024 * 1024;
/** Chunks of one request read at once. */
const CHUNKS_AT_ONCE = 8;
/** Plain bytes read ahead after a chunk when reads are sequential. */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;
/** Bytes of a slot: the most one batch reads, stored and plain. */
const SLOT_BYTES = 2 * 1024 * 1024;
/** Blobs this close in one pack are read together, the gap included (as restore does). */
const MAX_GAP = 256 * 1024;

export interface GenerationExportOptions {
  readonly repo: Repository;
  readonly index: DiskIndex;
  /** Names the disk in messages ("set web01 generation 3 disk sda"). */
  readonly what: string;
  /** Workers that decompress and verify; the export does not close it. */
  readonly pool?: ChunkPool;
  readonly cacheBytes?: number;
}

interface Wanted { readonly i: number; readonly hex: string; readonly loc: BlobLocation }

export class GenerationExport implements ExportBackend {
  readonly writable = false;
  readonly size: number;
  private readonly repo: Repository;
  private readonly index: DiskIndex;
  private readonly what: string;
  private readonly pool: ChunkPool | undefined;
  private slots: SlotSet | undefined;
  /** Slots not in use, and how many are. */
  private free: Slot[] = [];
  private busy = 0;
  /** Chunks waiting for a slot, oldest first. */
  private queue: Job[] = [];
  /** digest → decoded chunk (and whether a read used it from here), least recently used first. */
  private readonly cache = new Map<string, { plain: Buffer; used: boolean }>();
  private readonly cacheEntries: number;
  private readonly loading = new Map<string, Promise<Buffer>>();
  /** Chunks read from the repository (not from the cache): for tests and figures. */
  chunksRead = 0;
  /** Plain bytes of those chunks: what a reader of the export cost the repository. */
  bytesRead = 0;

  private constructor(options: GenerationExportOptions) {
    this.repo = options.repo;
    this.index = options.index;
    this.what = options.what;
    this.pool = options.pool;
    this.size = options.index.size;
    this.cacheEntries = Math.max(2, Math.floor((options.cacheBytes ?? DEFAULT_CACHE_BYTES) / options.index.chunkSize));
  }

  /** The repository's index must be loaded. */
  static async open(options: GenerationExportOptions): Promise<GenerationExport> {
    const e = new GenerationExport(options);
    if (e.pool) {
      const room = Math.max(options.index.chunkSize, SLOT_BYTES);
      e.slots = await e.pool.createSlots(e.pool.size * 2, { input: Math.max(storedBound(options.index.chunkSize), room), output: room, digests: 0 });
      e.free = [...e.slots.all];
    }
    return e;
  }

  /** Lets go of the worker slots (the pool itself belongs to the caller). */
  async close(): Promise<void> {
    const slots = this.slots;
    this.slots = undefined;
    this.free = [];
    for (const j of this.queue.splice(0)) j.reject(new Error(`${this.what}: the export is closed`));
    if (slots && this.pool) await this.pool.disposeSlots(slots);
  }

  async read(offset: number, into: Buffer): Promise<void> {
    if (offset < 0 || offset + into.length > this.size) throw new RangeError(`read of ${into.length} bytes at offset ${offset} is outside the disk`);
    if (into.length === 0) return;
    const cs = this.index.chunkSize;
    const end = offset + into.length;
    const wanted: number[] = [];
    for (let i = Math.floor(offset / cs); i * cs < end; i++) {
      if (this.index.isZero(i)) {
        into.fill(0, Math.max(offset, i * cs) - offset, Math.min(end, (i + 1) * cs) - offset);
      } else {
        wanted.push(i);
      }
    }
    await runWindowed(wanted, CHUNKS_AT_ONCE, async (i) => {
      const start = i * cs;
      const from = Math.max(offset, start);
      const to = Math.min(end, start + this.index.chunkLength(i));
      const plain = await this.chunk(i);
      plain.copy(into, from - offset, from - start, to - start);
    });
  }

  /** base:allocation: zero chunks are holes that read as zeros, every other chunk is data. */
  async blockStatus(offset: number, length: number): Promise<ExportExtent[]> {
    const cs = this.index.chunkSize;
    const end = Math.min(this.size, offset + length);
    const out: ExportExtent[] = [];
    let runStart = offset;
    let runFlags = -1;
    for (let i = Math.floor(offset / cs); i * cs < end; i++) {
      const flags = this.index.isZero(i) ? StateFlag.HOLE | StateFlag.ZERO : 0;
      const start = Math.max(offset, i * cs);
      if (flags !== runFlags) {
        if (runFlags >= 0) out.push({ length: start - runStart, flags: runFlags });
        if (out.length >= 1024) return out;
        runStart = start;
        runFlags = flags;
      }
    }
    if (runFlags >= 0) out.push({ length: end - runStart, flags: runFlags });
    return out;
  }

  /** Chunk i, decoded and checked; from the cache when it is there. */
  private chunk(i: number): Promise<Buffer> {
    const hex = toHex(this.index.get(i));
    const cached = this.cache.get(hex);
    if (cached) {
      // A chunk used more than once gets a buffer of its own, so that it does not keep the
      // rest of its batch's buffer alive after the other chunks have left the cache.
      if (cached.used && cached.plain.byteLength !== cached.plain.buffer.byteLength) cached.plain = Buffer.from(cached.plain);
      cached.used = true;
      this.cache.delete(hex);
      this.cache.set(hex, cached);
      return Promise.resolve(cached.plain);
    }
    const pending = this.loading.get(hex);
    if (pending) return pending;
    const loc = this.repo.lookup(hex);
    if (!loc) return Promise.reject(missingBlobError(`reading ${this.what} at offset ${i * this.index.chunkSize}`, hex));
    const w = { i, hex, loc };
    if (this.free.length + this.busy === 0 || loc.length > this.index.chunkSize || loc.rawLength > this.index.chunkSize) {
      return this.track(w, this.repo.readBlob(hex, `reading ${this.what} at offset ${i * this.index.chunkSize}`));
    }
    const p = this.enqueue(w);
    // Sequential reading: the chunks after this one, stored right after it, come along.
    const prev = i > 0 && !this.index.isZero(i - 1) ? toHex(this.index.get(i - 1)) : undefined;
    if (prev && (this.cache.has(prev) || this.loading.has(prev))) {
      let end = loc.offset + loc.length;
      for (let j = i + 1, bytes = loc.rawLength; j < this.index.count && !this.index.isZero(j); j++) {
        const h = toHex(this.index.get(j));
        if (this.cache.has(h) || this.loading.has(h)) break;
        const l = this.repo.lookup(h);
        if (!l || l.pack !== loc.pack || l.offset !== end || l.rawLength > this.index.chunkSize) break;
        bytes += l.rawLength;
        if (bytes > READ_AHEAD_BYTES) break;
        void this.enqueue({ i: j, hex: h, loc: l });
        end += l.length;
      }
    }
    this.pump();
    return p;
  }

  /** Registers a chunk as loading; when it arrives it is checked for length and cached. */
  private track(w: Wanted, loaded: Promise<Buffer>): Promise<Buffer> {
    const p = loaded.then((plain) => {
      this.chunksRead++;
      this.bytesRead += plain.length;
      if (plain.length !== this.index.chunkLength(w.i)) {
        throw new RepositoryDamagedError(`reading ${this.what} at offset ${w.i * this.index.chunkSize}: blob ${w.hex} holds ${plain.length} bytes, the chunk has ${this.index.chunkLength(w.i)}`);
      }
      this.cache.set(w.hex, { plain, used: false });
      while (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
      return plain;
    }).finally(() => this.loading.delete(w.hex));
    p.catch(() => {}); // read-ahead chunks nobody waits for must not become unhandled rejections
    this.loading.set(w.hex, p);
    return p;
  }

  private enqueue(w: Wanted): Promise<Buffer> {
    return this.track(w, new Promise<Buffer>((resolve, reject) => this.queue.push({ w, resolve, reject })));
  }

  /** Starts a batch on every free slot while chunks wait. */
  private pump(): void {
    while (this.free.length > 0 && this.queue.length > 0) {
      const slot = this.free.pop()!;
      const batch = this.takeBatch(slot.input.length, slot.output.length);
      this.busy++;
      void this.runBatch(slot, batch).finally(() => {
        this.busy--;
        this.free.push(slot);
        this.pump();
      });
    }
  }

  /**
   * The oldest waiting chunk and the waiting chunks stored near it in the same pack (gaps of
   * at most MAX_GAP), as many as fit a slot: one read and one message for all of them.
   */
  private takeBatch(room: number, rawRoom: number): Job[] {
    const first = this.queue[0]!;
    const pack = first.w.loc.pack;
    const same = this.queue.filter((j) => j.w.loc.pack === pack && j !== first).sort((a, b) => a.w.loc.offset - b.w.loc.offset);
    let lo = first.w.loc.offset;
    let hi = lo + first.w.loc.length;
    let raw = first.w.loc.rawLength;
    const fits = (j: Job, from: number, to: number) => to - from <= room && raw + j.w.loc.rawLength <= rawRoom;
    const after: Job[] = [];
    for (const j of same) {
      if (j.w.loc.offset < hi) continue;
      const end = j.w.loc.offset + j.w.loc.length;
      if (j.w.loc.offset - hi > MAX_GAP || !fits(j, lo, end)) break;
      after.push(j);
      hi = end;
      raw += j.w.loc.rawLength;
    }
    const before: Job[] = [];
    for (const j of same.filter((x) => x.w.loc.offset < lo).reverse()) {
      if (lo - (j.w.loc.offset + j.w.loc.length) > MAX_GAP || !fits(j, j.w.loc.offset, hi)) break;
      before.unshift(j);
      lo = j.w.loc.offset;
      raw += j.w.loc.rawLength;
    }
    const batch = [...before, first, ...after];
    const taken = new Set(batch);
    this.queue = this.queue.filter((j) => !taken.has(j));
    return batch;
  }

  /**
   * Reads a batch's blobs in one read and has a worker decompress and verify them. Chunks
   * before a bad one are delivered, the bad one fails, the ones after it (not checked) wait
   * again for a batch of their own.
   */
  private async runBatch(slot: Slot, batch: Job[]): Promise<void> {
    const first = batch[0]!.w.loc;
    const last = batch[batch.length - 1]!.w.loc;
    const blobs = batch.map((job) => ({ digest: job.w.hex, loc: job.w.loc, job }));
    const read = { pack: first.pack, offset: first.offset, length: last.offset + last.length - first.offset, rawLength: blobs.reduce((n, b) => n + b.loc.rawLength, 0), blobs };
    let got;
    try {
      got = await readBlobs(this.repo.backend, this.pool!, slot, [read], { findData: false, describe: (b) => `reading ${this.what} at offset ${b.job.w.i * this.index.chunkSize}` });
    } catch (err) {
      for (const j of batch) j.reject(err as Error);
      return;
    }
    // One copy out of the slot for the whole batch; each chunk is a view of it.
    const good = got.plain.length;
    const out = Buffer.from(slot.output.subarray(0, got.plain.reduce((n, p) => n + p.length, 0)));
    let o = 0;
    for (let k = 0; k < good; k++) {
      const n = got.plain[k]!.length;
      batch[k]!.resolve(out.subarray(o, o + n));
      o += n;
    }
    if (got.corrupt) {
      batch[good]!.reject(got.corrupt.error);
      this.queue.unshift(...batch.slice(good + 1));
    }
  }
}

interface Job {
  readonly w: Wanted;
  resolve(plain: Buffer): void;
  reject(err: Error): void;
}
