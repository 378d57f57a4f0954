/**
 * Repository: the on-disk format behind one StorageBackend. It knows where blobs are
 * (the in-memory master index built from index files), packs new blobs, and reads,
 * commits and removes generation manifests. It does not lock: callers take the lock
 * their operation needs (see lock.ts).
 */
import { AlreadyExistsError, NotFoundError, RepositoryDamagedError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { StorageBackend } from '../storage/backend.js';
import { missingBlobError, readOneBlob } from './blob-read.js';
import { type BlobCodec, type CodecSpec, DEFAULT_CODEC, type Encoded, createBlobCodec } from './compression.js';
import { type RepositoryConfig, encodeConfig, newConfig, readConfig } from './config.js';
import { sha256, toHex } from './digest.js';
import { type GenerationManifest, decodeManifest, encodeManifest } from './generation.js';
import { type BlobLocation, type IndexedPack, decodeIndexFile, encodeIndexFile } from './index-file.js';
import { CONFIG, GENERATIONS_PREFIX, INDEX_PREFIX, checkSetName, generationName, indexName, packName, parseGenerationName } from './layout.js';
import { putContentAddressed } from './write-once.js';
import { type BlobType, type FinishedPack, PackBuilder } from './pack.js';

/** Packs close at this size: large enough for few files and sequential reads, small enough to repack. */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;
/** Index files are written at least this often (in packs), so a long backup that dies keeps most of its work findable. */
const PACKS_PER_INDEX_FILE = 64;
const PUTS_IN_FLIGHT = 2;

export interface GenerationRef {
  readonly set: string;
  readonly generation: number;
}

export class Repository {
  private readonly blobs = new Map<string, BlobLocation>();
  private readonly pending = new Set<string>();
  private readonly indexFiles = new Set<string>();
  private pack: PackBuilder | undefined;
  /** Pack buffers whose upload finished, for reuse: a fresh 16 MiB buffer per pack costs page faults. */
  private readonly spareBuffers: Buffer[] = [];
  private finishedPacks: IndexedPack[] = [];
  /** Pack uploads not yet settled; they never reject (a failure lands in putError). */
  private readonly puts = new Set<Promise<void>>();
  /**
   * The first failed pack upload. Sticky: its blobs are marked pending, so a later commit
   * through this instance could reference data that was never stored.
   */
  private putError: unknown;
  private indexLoaded = false;

  /** Decodes blobs on the calling thread exactly as the chunk workers do. */
  readonly codec: BlobCodec;

  private constructor(readonly backend: StorageBackend, readonly config: RepositoryConfig) {
    this.codec = createBlobCodec(this.codecSpec());
  }

  /**
   * What the chunk workers need to encode and decode this repository's blobs; pass it to
   * every ChunkPool that works for it. `compressionLevel` applies to new blobs only.
   */
  codecSpec(compressionLevel?: number): CodecSpec {
    return { ...DEFAULT_CODEC, ...(compressionLevel === undefined ? {} : { compressionLevel }) };
  }

  static async init(backend: StorageBackend, chunkSize?: number): Promise<Repository> {
    const config = newConfig(chunkSize);
    try {
      await backend.put(CONFIG, encodeConfig(config));
    } catch (err) {
      if (err instanceof AlreadyExistsError) {
        throw new AlreadyExistsError(`creating a repository at ${backend.location} failed: one exists there already`, { cause: err });
      }
      throw err;
    }
    return new Repository(backend, config);
  }

  static async open(backend: StorageBackend): Promise<Repository> {
    return new Repository(backend, await readConfig(backend));
  }

  get location(): string {
    return this.backend.location;
  }

  // ---- master index -------------------------------------------------------------

  /**
   * Reads every index file. A damaged index file is reported through `onDamaged` when
   * given (verify wants to go on), else thrown.
   */
  async loadIndex(onDamaged?: (err: RepositoryDamagedError) => void): Promise<void> {
    for (const name of await this.backend.list(INDEX_PREFIX)) {
      if (this.indexFiles.has(name)) continue;
      try {
        const raw = await this.backend.get(name);
        const id = name.slice(INDEX_PREFIX.length);
        if (sha256(raw).toString('hex') !== id) throw new RepositoryDamagedError(`reading index file ${name} failed: content does not match its name (corrupted)`);
        decodeIndexFile(raw, name, (digest, loc) => { if (!this.blobs.has(digest)) this.blobs.set(digest, loc); });
        this.indexFiles.add(name);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // removed by a concurrent gc before we read it
        if (onDamaged && err instanceof RepositoryDamagedError) onDamaged(err);
        else throw err;
      }
    }
    this.indexLoaded = true;
  }

  private requireIndex(): void {
    if (!this.indexLoaded) throw new Error('repository index not loaded');
  }

  lookup(digestHex: string): BlobLocation | undefined {
    this.requireIndex();
    return this.blobs.get(digestHex);
  }

  /** True when the blob is stored, or queued for storage in this session. */
  has(digestHex: string): boolean {
    this.requireIndex();
    return this.blobs.has(digestHex) || this.pending.has(digestHex);
  }

  /** All indexed blobs (for verify and gc). */
  entries(): IterableIterator<[string, BlobLocation]> {
    this.requireIndex();
    return this.blobs.entries();
  }

  indexFileNames(): string[] {
    return [...this.indexFiles];
  }

  // ---- writing blobs ------------------------------------------------------------

  /**
   * Queues a blob unless the repository has it. Returns the bytes it adds (0 for a
   * duplicate). The check and the append happen without yielding, so concurrent callers
   * never store one digest twice. The returned promise resolves when there is room for
   * more (a full pack is being written).
   */
  addBlob(digest: Buffer, type: BlobType, encoded: Encoded, rawLength: number): { added: number; ready: Promise<void> } {
    const hex = toHex(digest);
    if (this.has(hex)) return { added: 0, ready: Promise.resolve() };
    this.pending.add(hex);
    let ready = Promise.resolve();
    if (this.pack && !this.pack.fits(encoded.data.length)) ready = this.rotatePack();
    this.pack ??= new PackBuilder(this.takeBuffer(encoded.data.length));
    this.pack.add(digest, type, encoded.compression, rawLength, encoded.data);
    return { added: encoded.data.length, ready };
  }

  private takeBuffer(atLeast: number): Buffer {
    const spare = this.spareBuffers.pop();
    if (spare && spare.length >= atLeast) return spare;
    return Buffer.allocUnsafeSlow(Math.max(PACK_TARGET_SIZE, atLeast));
  }

  private async rotatePack(): Promise<void> {
    const builder = this.pack;
    this.pack = undefined;
    if (!builder || builder.count === 0) return;
    const finished = builder.finish();
    const put: Promise<void> = putPack(this.backend, finished).then(() => {
      this.finishedPacks.push({ id: finished.id, entries: finished.entries });
      if (this.spareBuffers.length < PUTS_IN_FLIGHT + 1) this.spareBuffers.push(builder.buffer);
    }, (err: unknown) => { this.putError ??= err; }).finally(() => this.puts.delete(put));
    this.puts.add(put);
    if (this.finishedPacks.length >= PACKS_PER_INDEX_FILE) await this.writeIndexFile();
    while (this.puts.size >= PUTS_IN_FLIGHT) await Promise.race(this.puts);
  }

  /**
   * Makes every queued blob durable and findable: packs first, then their index file.
   * Waits for every upload in flight, including those another job sharing this instance
   * started, since a generation may reference a blob another job queued.
   */
  async flush(): Promise<void> {
    await this.rotatePack();
    while (this.puts.size > 0) await Promise.all([...this.puts]);
    if (this.putError !== undefined) throw this.putError;
    await failpoint('flush:packs-written');
    await this.writeIndexFile();
  }

  private async writeIndexFile(): Promise<void> {
    const packs = this.finishedPacks;
    if (packs.length === 0) return;
    this.finishedPacks = [];
    const raw = encodeIndexFile(packs);
    const id = sha256(raw).toString('hex');
    const name = indexName(id);
    await putContentAddressed(this.backend, name, id, raw);
    this.indexFiles.add(name);
    for (const p of packs) {
      for (const e of p.entries) {
        const hex = toHex(e.digest);
        this.pending.delete(hex);
        if (!this.blobs.has(hex)) {
          this.blobs.set(hex, { pack: p.id, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength });
        }
      }
    }
  }

  // ---- reading blobs ------------------------------------------------------------

  /** Reads one blob on the calling thread and checks it against its digest. `what` names the reader for messages. */
  async readBlob(digestHex: string, what: string): Promise<Buffer> {
    const loc = this.lookup(digestHex);
    if (!loc) throw missingBlobError(what, digestHex);
    return readOneBlob(this.backend, this.codec, { digest: digestHex, loc }, what);
  }

  // ---- generations ----------------------------------------------------------------

  async listGenerations(set?: string): Promise<GenerationRef[]> {
    if (set !== undefined) checkSetName(set);
    const names = await this.backend.list(set === undefined ? GENERATIONS_PREFIX : `${GENERATIONS_PREFIX}${set}/`);
    return names.map(parseGenerationName).filter((g): g is GenerationRef => g !== undefined)
      .sort((a, b) => (a.set < b.set ? -1 : a.set > b.set ? 1 : a.generation - b.generation));
  }

  async readGeneration(set: string, generation: number): Promise<GenerationManifest> {
    checkSetName(set);
    const name = generationName(set, generation);
    let raw: Buffer;
    try {
      raw = await this.backend.get(name);
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`set ${set} has no generation ${generation}`, { cause: err });
      throw err;
    }
    const m = decodeManifest(raw, name);
    if (m.set !== set || m.generation !== generation) {
      throw new RepositoryDamagedError(`reading generation ${name} failed: it says it is ${m.set} generation ${m.generation}`);
    }
    return m;
  }

  /** Writes the manifest; throws AlreadyExistsError if that number was taken meanwhile. */
  async commitGeneration(manifest: GenerationManifest): Promise<void> {
    checkSetName(manifest.set);
    await this.backend.put(generationName(manifest.set, manifest.generation), encodeManifest(manifest));
  }

  async removeGeneration(ref: GenerationRef): Promise<void> {
    await this.backend.remove(generationName(ref.set, ref.generation));
  }
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
