/**
 * Repository: the on-disk format behind one StorageBackend. It knows where blobs are
 * (the in-memory master index built from index files), hands out writers that pack new
 * blobs (pack-writer.ts), reads blobs (blob-read.ts), and reads, commits and removes
 * generation manifests. It owns how blobs and metadata are encoded (codecSpec, objects).
 * It does not lock: callers take the lock their operation needs (see lock.ts). One
 * instance can serve many jobs of a long-running process.
 */
import { AlreadyExistsError, NotFoundError, RepositoryDamagedError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { missingBlobError, readOneBlob } from './blob-read.js';
import { ChunkPool } from './chunk-pool.js';
import { type BlobCodec, type CodecSpec, DEFAULT_CODEC, createBlobCodec } from './compression.js';
import { type RepositoryConfig, encodeConfig, newConfig, readConfig } from './config.js';
import { toHex } from './digest.js';
import { type GenerationManifest, decodeManifest, encodeManifest } from './generation.js';
import type { BlobLocation, IndexedPack } from './index-file.js';
import { readIndexFile } from './index-files.js';
import { CONFIG, GENERATIONS_PREFIX, INDEX_PREFIX, checkSetName, generationName, parseGenerationName } from './layout.js';
import { type ObjectCodec, PLAIN_OBJECTS } from './object-codec.js';
import { type BlobWriter, PackWriter } from './pack-writer.js';

/** A use of the repository's shared chunk workers. */
export interface PoolLease {
  readonly pool: ChunkPool;
  release(): Promise<void>;
}

/** How often loadIndex lists again while a concurrent gc rewrites the index under it. */
const INDEX_RELOAD_PASSES = 3;

export interface GenerationRef {
  readonly set: string;
  readonly generation: number;
}

export class Repository {
  private blobs = new Map<string, BlobLocation>();
  private indexFiles = new Set<string>();
  private indexLoaded = false;
  private readonly packs: PackWriter;
  private sharedPool: { readonly pool: ChunkPool; leases: number } | undefined;

  /** What the chunk workers need to encode and decode this repository's blobs (every pool of it gets it). */
  readonly codecSpec: CodecSpec = DEFAULT_CODEC;
  /** Decodes blobs on the calling thread exactly as the chunk workers do. */
  readonly codec: BlobCodec;
  /** Seals and opens metadata objects (index files, manifests). */
  readonly objects: ObjectCodec = PLAIN_OBJECTS;

  private constructor(readonly backend: StorageBackend, readonly config: RepositoryConfig) {
    this.codec = createBlobCodec(this.codecSpec);
    this.packs = new PackWriter(backend, this.objects, {
      has: (hex) => this.blobs.has(hex),
      indexed: (name, packs) => this.addIndexed(name, packs),
    });
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
   * Reads the index files it has not read yet, so a long-running process sees what other
   * processes stored since. When an index file it read is gone, gc or prune rewrote the
   * index: the master index is read again from scratch, off to the side, and swapped in,
   * so that no lookup points into a pack gc removed. A damaged index file is reported
   * through `onDamaged` when given (verify wants to go on), else thrown.
   */
  async loadIndex(onDamaged?: (err: RepositoryDamagedError) => void): Promise<void> {
    for (let pass = 1; ; pass++) {
      const names = await this.backend.list(INDEX_PREFIX);
      const listed = new Set(names);
      const rebuild = [...this.indexFiles].some((n) => !listed.has(n));
      const blobs = rebuild ? new Map<string, BlobLocation>() : this.blobs;
      const files = rebuild ? new Set<string>() : this.indexFiles;
      let vanished = false;
      for (const name of names) {
        if (files.has(name)) continue;
        try {
          await readIndexFile(this.backend, this.objects, name, (digest, loc) => { if (!blobs.has(digest)) blobs.set(digest, loc); });
          files.add(name);
        } catch (err) {
          if (err instanceof NotFoundError) { vanished = true; continue; }
          if (onDamaged && err instanceof RepositoryDamagedError) onDamaged(err);
          else throw err;
        }
      }
      if (rebuild) {
        this.blobs = blobs;
        this.indexFiles = files;
      }
      this.indexLoaded = true;
      // An index file removed between listing and reading was replaced by gc's new one, which
      // the listing may have missed: list again (gc writes the new one before removing the old).
      if (!vanished && !rebuild) return;
      if (pass >= INDEX_RELOAD_PASSES) return;
    }
  }

  private requireIndex(): void {
    if (!this.indexLoaded) throw new Error('repository index not loaded');
  }

  lookup(digestHex: string): BlobLocation | undefined {
    this.requireIndex();
    return this.blobs.get(digestHex);
  }

  private addIndexed(name: string, packs: readonly IndexedPack[]): void {
    this.indexFiles.add(name);
    for (const p of packs) {
      for (const e of p.entries) {
        const hex = toHex(e.digest);
        if (!this.blobs.has(hex)) {
          this.blobs.set(hex, { pack: p.id, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength });
        }
      }
    }
  }

  /** All indexed blobs (for verify and gc). */
  entries(): IterableIterator<[string, BlobLocation]> {
    this.requireIndex();
    return this.blobs.entries();
  }

  indexFileNames(): string[] {
    return [...this.indexFiles];
  }

  // ---- chunk workers ------------------------------------------------------------

  /**
   * The chunk workers of this repository, shared by every job of the process (a batch of
   * VMs, a server's jobs) instead of a pool per job. The first lease's size sets the
   * pool's; the workers stop when the last lease is released.
   */
  acquirePool(size?: number): PoolLease {
    const shared = this.sharedPool ??= { pool: new ChunkPool(size, this.codecSpec), leases: 0 };
    shared.leases++;
    let released = false;
    return {
      pool: shared.pool,
      release: async () => {
        if (released) return;
        released = true;
        if (--shared.leases > 0) return;
        if (this.sharedPool === shared) this.sharedPool = undefined;
        await shared.pool.close();
      },
    };
  }

  // ---- writing blobs ------------------------------------------------------------

  /** A writer for one job: see pack-writer.ts. The index must be loaded. */
  writer(): BlobWriter {
    this.requireIndex();
    return this.packs.writer();
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
    const m = decodeManifest(this.objects.open(name, raw), name);
    if (m.set !== set || m.generation !== generation) {
      throw new RepositoryDamagedError(`reading generation ${name} failed: it says it is ${m.set} generation ${m.generation}`);
    }
    return m;
  }

  /** Writes the manifest; throws AlreadyExistsError if that number was taken meanwhile. */
  async commitGeneration(manifest: GenerationManifest): Promise<void> {
    checkSetName(manifest.set);
    const name = generationName(manifest.set, manifest.generation);
    await this.backend.put(name, this.objects.seal(name, encodeManifest(manifest)));
  }

  async removeGeneration(ref: GenerationRef): Promise<void> {
    await this.backend.remove(generationName(ref.set, ref.generation));
  }
}
