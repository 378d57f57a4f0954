/**
 * Writing blobs: the packs being filled and uploaded, and their index files. One
 * PackWriter per Repository, shared by every job of the process, so that two jobs never
 * store one digest twice; each job writes through a BlobWriter of its own, which knows
 * which packs its blobs are in. A failed upload fails the jobs whose blobs it held (or
 * that skipped a blob because it was on its way), not every job after it: its blobs are
 * forgotten, and the next job that needs one stores it again.
 */
import { failpoint } from '../failpoints.js';
import type { StorageBackend } from '../storage/backend.js';
import type { Encoded } from './blob-codec.js';
import { toHex } from './digest.js';
import type { IndexedPack } from './index-file.js';
import { writeIndexFile } from './index-files.js';
import { packName } from './layout.js';
import type { ObjectCodec } from './object-codec.js';
import { type BlobType, type FinishedPack, PackBuilder, packTrailerBound } from './pack.js';
import { putContentAddressed } from './write-once.js';

/** Packs close at this size: large enough for few files and sequential reads, small enough to repack. */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;
/** Index files are written at least this often (in packs), so a long backup that dies keeps most of its work findable. */
const PACKS_PER_INDEX_FILE = 64;
/** Pack uploads in flight at once, unless the backend asks for more. */
const PUTS_IN_FLIGHT = 2;

/** What the writer needs of the repository's master index. */
export interface IndexedBlobs {
  has(digestHex: string): boolean;
  /** Packs whose index file `name` is now durable. */
  indexed(name: string, packs: readonly IndexedPack[]): void;
}

/** One job's way to store blobs. */
export interface BlobWriter {
  /** True when the repository has the blob or it is on its way (then this job waits for it at flush). */
  has(digestHex: string): boolean;
  /**
   * Queues a blob unless the repository has it. Returns the bytes it adds (0 for a
   * duplicate). The check and the append happen without yielding, so concurrent callers
   * never store one digest twice. `ready` resolves when there is room for more.
   */
  addBlob(digest: Buffer, type: BlobType, encoded: Encoded, rawLength: number): { added: number; ready: Promise<void> };
  /**
   * Makes every blob this job stored or relies on durable and findable: packs first, then
   * their index file. Throws the upload error of any pack it relies on.
   */
  flush(): Promise<void>;
}

/**
 * Stores a pack. Packs are named by their content, so a pack of that name may exist
 * already (left by an interrupted backup or gc that wrote the same blobs): that is the
 * same pack. One of that name with other content is never replaced (write-once): the
 * put fails, naming both.
 */
export async function putPack(backend: StorageBackend, pack: FinishedPack): Promise<void> {
  await putContentAddressed(backend, packName(pack.id), pack.id, pack.parts);
}

/** A pack from its first blob to its index file. */
class PackState {
  readonly digests: string[] = [];
  upload: Promise<void> | undefined;
  failed: unknown;
  readonly indexed: Promise<void>;
  settleIndexed!: (err?: unknown) => void;
  constructor(readonly builder: PackBuilder) {
    this.indexed = new Promise<void>((resolve, reject) => { this.settleIndexed = (err) => (err === undefined ? resolve() : reject(err)); });
    this.indexed.catch(() => {});
  }
}

export class PackWriter {
  private open: PackState | undefined;
  /** Digest → the pack that holds it until its index file is written. */
  private readonly pending = new Map<string, PackState>();
  private readonly uploads = new Set<Promise<void>>();
  private uploaded: { state: PackState; pack: IndexedPack }[] = [];
  /** Pack buffers whose upload finished, for reuse: a fresh 16 MiB buffer per pack costs page faults. */
  private readonly spareBuffers: Buffer[] = [];

  constructor(private readonly backend: StorageBackend, private readonly objects: ObjectCodec, private readonly index: IndexedBlobs) {}

  writer(): BlobWriter {
    const relies = new Set<PackState>();
    const note = (hex: string): boolean => {
      const p = this.pending.get(hex);
      if (p) relies.add(p);
      return p !== undefined;
    };
    return {
      has: (hex) => note(hex) || this.index.has(hex),
      addBlob: (digest, type, encoded, rawLength) => {
        const hex = toHex(digest);
        if (note(hex) || this.index.has(hex)) return { added: 0, ready: Promise.resolve() };
        let ready = Promise.resolve();
        if (this.open && !this.open.builder.fitsWithTrailer(encoded.data.length)) ready = this.rotate();
        this.open ??= new PackState(new PackBuilder(this.takeBuffer(encoded.data.length + packTrailerBound(1, this.objects.sealed)), this.objects));
        this.open.builder.add(digest, type, encoded.compression, rawLength, encoded.data);
        this.open.digests.push(hex);
        this.pending.set(hex, this.open);
        relies.add(this.open);
        return { added: encoded.data.length, ready };
      },
      flush: async () => {
        if (this.open && relies.has(this.open)) await this.rotate();
        await Promise.all([...relies].map((p) => p.upload));
        for (const p of relies) if (p.failed !== undefined) throw p.failed;
        await failpoint('flush:packs-written');
        await this.writeIndexFile();
        await Promise.all([...relies].map((p) => p.indexed));
        relies.clear();
      },
    };
  }

  private takeBuffer(atLeast: number): Buffer {
    const spare = this.spareBuffers.pop();
    if (spare && spare.length >= atLeast) return spare;
    return Buffer.allocUnsafeSlow(Math.max(PACK_TARGET_SIZE, atLeast));
  }

  /** Closes the open pack and starts its upload; waits while too many are in flight. */
  private async rotate(): Promise<void> {
    const state = this.open;
    this.open = undefined;
    if (!state || state.builder.count === 0) return;
    const finished: FinishedPack = state.builder.finish();
    const upload: Promise<void> = putPack(this.backend, finished).then(() => {
      this.uploaded.push({ state, pack: { id: finished.id, entries: finished.entries } });
      if (this.spareBuffers.length < this.putsInFlight + 1) this.spareBuffers.push(state.builder.buffer);
    }, (err: unknown) => this.forget(state, err)).finally(() => this.uploads.delete(upload));
    state.upload = upload;
    this.uploads.add(upload);
    if (this.uploaded.length >= PACKS_PER_INDEX_FILE) await this.writeIndexFile();
    while (this.uploads.size >= this.putsInFlight) await Promise.race(this.uploads);
  }

  private get putsInFlight(): number {
    return this.backend.putsInFlight ?? PUTS_IN_FLIGHT;
  }

  /** A pack that will never be findable: its blobs are forgotten, so a later job stores them again. */
  private forget(state: PackState, err: unknown): void {
    state.failed = err;
    state.settleIndexed(err);
    this.unpend(state);
  }

  /** Its blobs are no longer on their way: indexed, or forgotten. */
  private unpend(state: PackState): void {
    for (const hex of state.digests) if (this.pending.get(hex) === state) this.pending.delete(hex);
  }

  /** Writes one index file for every uploaded pack not yet in one. */
  private async writeIndexFile(): Promise<void> {
    const done = this.uploaded;
    if (done.length === 0) return;
    this.uploaded = [];
    const packs = done.map((d) => d.pack);
    let name: string;
    try {
      name = await writeIndexFile(this.backend, this.objects, packs);
    } catch (err) {
      // Unfindable without their index file: the jobs relying on these packs fail, later ones store the blobs again.
      for (const d of done) this.forget(d.state, err);
      throw err;
    }
    this.index.indexed(name, packs);
    for (const d of done) {
      this.unpend(d.state);
      d.state.settleIndexed();
    }
  }
}
