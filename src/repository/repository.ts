/**
 * Repository: the on-disk format behind one StorageBackend. It knows where blobs are
 * (the master index, master-index.ts), hands out writers that pack new
 * blobs (pack-writer.ts), reads blobs (blob-read.ts), and reads, commits and removes
 * generation manifests. It owns how blobs and metadata are encoded (codecSpec, objects).
 * It does not lock: callers take the lock their operation needs (see lock.ts). One
 * instance can serve many jobs of a long-running process.
 */
import { AlreadyExistsError, NotFoundError, RepositoryDamagedError, UnsupportedFormatError, UsageError } from '../errors.js';
import type { ObjectLockPolicy, StorageBackend } from '../storage/backend.js';
import { missingBlobError, readOneBlob } from './blob-read.js';
import { ChunkPool } from './chunk-pool.js';
import { type BlobCodec, type CodecSpec, DEFAULT_COMPRESSION_LEVEL, createBlobCodec } from './blob-codec.js';
import { type RepositoryConfig, checkConfigAuthenticator, encodeConfig, newConfig, readConfig } from './config.js';
import { type MasterKey, type RepositoryKeys, deriveKeys, hmac, newMasterKey } from './encryption.js';
import { type GenerationManifest, decodeManifest, encodeManifest } from './generation.js';
import { type BlobLocation, INDEX_MAGIC } from './index-file.js';
import { type KdfParams, type StoredKey, encodeRecoveryFile, listKeys, unlockMasterKey, writeKey } from './keys.js';
import { CONFIG, GENERATIONS_PREFIX, INDEX_PREFIX, KEYS_PREFIX, checkSetName, generationName, parseGenerationName } from './layout.js';
import { lookupPath, memoryEntries } from './lookup-cache.js';
import { MasterIndex } from './master-index.js';
import { type ObjectCodec, PLAIN_OBJECTS, sealedObjects } from './object-codec.js';
import { type BlobWriter, PackWriter } from './pack-writer.js';

export interface InitOptions {
  readonly chunkSize?: number;
  /** Encrypts the repository, its master key wrapped with this password; without it the repository is plaintext. */
  readonly encryption?: {
    readonly password: string; readonly kdf?: KdfParams; readonly label?: string;
    /**
     * Wraps this (encrypted) repository's master key instead of making a new one, so that
     * both name blobs alike and copies between them need not read what the other holds
     * (`init --from-repo`). Whoever has either repository's key reads both.
     */
    readonly shareKeyOf?: Repository;
  };
  /** Every object written (but locks) is locked for this long: the backend must be able to. */
  readonly objectLock?: ObjectLockPolicy;
}

/** From now on, what the backend writes is locked; a backend that cannot lock refuses the repository. */
function lockObjects(backend: StorageBackend, policy: ObjectLockPolicy): void {
  if (!backend.lockObjects) {
    throw new UnsupportedFormatError(`repository ${backend.location} has an object lock of ${policy.days} days (${policy.mode}), which only S3 object storage keeps`);
  }
  backend.lockObjects(policy);
}

export interface OpenOptions {
  /** Asked for only when the repository is encrypted (and no master key is given). */
  readonly password?: () => Promise<string>;
  /** Opens an encrypted repository with its master key (a recovery copy) instead of a password. */
  readonly masterKey?: MasterKey;
}

/**
 * What an encrypted repository leaves that a plaintext one never has: key objects, set
 * directories named by a MAC, index files without the plaintext magic. A plaintext config
 * beside any of them was put there to make backups go unencrypted.
 */
async function encryptedObjectsIn(backend: StorageBackend): Promise<string | undefined> {
  if ((await backend.list(KEYS_PREFIX)).length > 0) return 'keys';
  const [index] = await backend.list(INDEX_PREFIX);
  if (index !== undefined) {
    // One index file tells: an encrypted repository has no plaintext one. Listing every
    // manifest is left for a repository without a readable index file.
    const head = await backend.get(index, { offset: 0, length: INDEX_MAGIC.length }).catch(() => undefined);
    if (head) return head.equals(INDEX_MAGIC) ? undefined : 'encrypted index files';
  }
  if ((await backend.list(GENERATIONS_PREFIX)).some((n) => parseGenerationName(n, true) !== undefined)) return 'encrypted generations';
  return undefined;
}

/** How an encrypted repository was opened. */
interface Unlocked {
  readonly master: MasterKey;
  readonly keys: RepositoryKeys;
  /** The key object the password opened; undefined when opened with the master key. */
  key: StoredKey | undefined;
}

/** A use of the repository's shared chunk workers. */
export interface PoolLease {
  readonly pool: ChunkPool;
  release(): Promise<void>;
}


export interface GenerationRef {
  readonly set: string;
  readonly generation: number;
}

export class Repository {
  private readonly index: MasterIndex;
  private readonly packs: PackWriter;
  private sharedPool: { readonly pool: ChunkPool; leases: number } | undefined;

  /** What the chunk workers need to encode and decode this repository's blobs (every pool of it gets it). */
  readonly codecSpec: CodecSpec;
  /** Encodes and decodes blobs on the calling thread exactly as the chunk workers do. */
  readonly codec: BlobCodec;
  /** Seals and opens metadata objects (index files, manifests, pack tables, locks). */
  readonly objects: ObjectCodec;
  /** Set names of the hidden set directories seen so far (encrypted repositories). */
  private readonly setNames = new Map<string, string>();

  private constructor(readonly backend: StorageBackend, readonly config: RepositoryConfig, private readonly unlocked?: Unlocked) {
    this.codecSpec = { compressionLevel: DEFAULT_COMPRESSION_LEVEL, ...(unlocked ? { keys: unlocked.keys } : {}) };
    this.codec = createBlobCodec(this.codecSpec);
    this.objects = unlocked ? sealedObjects(unlocked.keys.data) : PLAIN_OBJECTS;
    this.index = new MasterIndex(backend, this.objects, config.id, { lookupPath: lookupPath(config.id), memoryEntries: memoryEntries() });
    this.packs = new PackWriter(backend, this.objects, {
      has: (hex) => this.index.has(hex),
      indexed: (name, packs) => this.index.indexed(name, packs),
    });
  }

  /**
   * Creates a repository. Encrypted: a new master key, its first key object, then the
   * config (a repository exists when its config does), so a failed init leaves no config.
   */
  static async init(backend: StorageBackend, options: InitOptions = {}): Promise<Repository> {
    const exists = `creating a repository at ${backend.location} failed: one exists there already`;
    if (await backend.stat(CONFIG)) throw new AlreadyExistsError(exists);
    let unlocked: Unlocked | undefined;
    let config: RepositoryConfig;
    if (options.objectLock) lockObjects(backend, options.objectLock);
    if (options.encryption) {
      const shared = options.encryption.shareKeyOf;
      const master = shared ? shared.requireEncrypted('sharing the master key').master : newMasterKey();
      const keys = deriveKeys(master);
      config = newConfig(options.chunkSize, keys, options.objectLock);
      const { password, kdf, label } = options.encryption;
      unlocked = { master, keys, key: await writeKey(backend, config.id, master, password, kdf, label) };
    } else {
      config = newConfig(options.chunkSize, undefined, options.objectLock);
    }
    try {
      await backend.put(CONFIG, encodeConfig(config));
    } catch (err) {
      if (unlocked?.key) await backend.remove(unlocked.key.name).catch(() => {});
      if (err instanceof AlreadyExistsError) throw new AlreadyExistsError(exists, { cause: err });
      throw err;
    }
    return new Repository(backend, config, unlocked);
  }

  /**
   * Opens a repository. An encrypted one needs its password (or master key): every key is
   * tried, and the config's authenticator checked, before anything is read or written. A
   * plaintext config beside key objects is refused: someone replaced the config to make
   * backups go unencrypted.
   */
  static async open(backend: StorageBackend, options: OpenOptions = {}): Promise<Repository> {
    const config = await readConfig(backend);
    if (config.objectLock) lockObjects(backend, config.objectLock);
    if (!config.encryption) {
      const encrypted = await encryptedObjectsIn(backend);
      if (encrypted) {
        throw new RepositoryDamagedError(`opening repository ${backend.location} refused: its config says it is not encrypted, yet it has ${encrypted} (the config was replaced)`);
      }
      return new Repository(backend, config);
    }
    let unlocked: Unlocked;
    if (options.masterKey) {
      unlocked = { master: options.masterKey, keys: deriveKeys(options.masterKey), key: undefined };
    } else {
      if (!options.password) {
        throw new UsageError(`repository ${backend.location} is encrypted: give its password with --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND`);
      }
      const { master, key } = await unlockMasterKey(backend, config.id, await options.password());
      unlocked = { master, keys: deriveKeys(master), key };
    }
    checkConfigAuthenticator(config, unlocked.keys, backend.location);
    return new Repository(backend, config, unlocked);
  }

  get encrypted(): boolean {
    return this.unlocked !== undefined;
  }

  get location(): string {
    return this.backend.location;
  }

  // ---- master index -------------------------------------------------------------

  /**
   * Reads the index files it has not read or merged yet (master-index.ts), so a long-running
   * process sees what other processes stored since. A damaged index file is reported through
   * `onDamaged` when given (verify wants to go on), else thrown.
   */
  async loadIndex(onDamaged?: (err: RepositoryDamagedError) => void): Promise<void> {
    await this.index.load(onDamaged);
  }

  /** Reads and checks the index files the local lookup file answers for (verify; see MasterIndex.checkMerged). */
  async checkMergedIndexFiles(onDamaged: (err: RepositoryDamagedError) => void): Promise<void> {
    await this.index.checkMerged(onDamaged);
  }

  private requireIndex(): void {
    if (!this.index.isLoaded) throw new Error('repository index not loaded');
  }

  lookup(digestHex: string): BlobLocation | undefined {
    return this.index.lookup(digestHex);
  }

  /** All indexed blobs (for verify, gc and status), streamed: the locations are not held in memory. */
  entries(): Iterator<[string, BlobLocation]> & Iterable<[string, BlobLocation]> {
    return this.index.entries();
  }

  indexFileNames(): string[] {
    return this.index.fileNames();
  }

  /** What opening cost and where lookups go (tests and the scale benchmark). */
  get indexStats(): { indexFilesRead: number; merged: number; inMemory: number } {
    return { indexFilesRead: this.index.indexFilesRead, ...this.index.counts };
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

  // ---- keys ---------------------------------------------------------------------

  private requireEncrypted(what: string): Unlocked {
    if (!this.unlocked) throw new UsageError(`${what} failed: repository ${this.location} is not encrypted, it has no keys`);
    return this.unlocked;
  }

  /** Every key object of the repository (damaged ones go to `onDamaged`, or throw without it). */
  async keys(onDamaged?: (err: RepositoryDamagedError) => void): Promise<StoredKey[]> {
    this.requireEncrypted('listing keys');
    return listKeys(this.backend, onDamaged);
  }

  /** The key object this process opened the repository with (undefined when opened with the master key). */
  get currentKey(): StoredKey | undefined {
    return this.unlocked?.key;
  }

  /** Wraps the master key with another password. */
  async addKey(password: string, kdf?: KdfParams, label?: string): Promise<StoredKey> {
    const u = this.requireEncrypted('adding a key');
    return writeKey(this.backend, this.config.id, u.master, password, kdf, label);
  }

  /** Removes a key object (the caller holds the exclusive lock and has checked it is not the last). */
  async removeKey(key: StoredKey): Promise<void> {
    this.requireEncrypted('removing a key');
    await this.backend.remove(key.name);
    if (this.unlocked?.key?.name === key.name) this.unlocked.key = undefined;
  }

  /** Makes `key` the one this process is said to have opened with (after a password change). */
  useKey(key: StoredKey): void {
    this.requireEncrypted('changing the key').key = key;
  }

  /** A recovery copy of the master key (JSON); whoever holds it can read and write the repository. */
  exportMasterKey(): Buffer {
    return encodeRecoveryFile(this.config.id, this.requireEncrypted('exporting the master key').master);
  }

  // ---- generations ----------------------------------------------------------------

  /** The directory of a set's manifests: its name, or (encrypted) the hex HMAC of its name. */
  private setDir(set: string): string {
    for (const [dir, name] of this.setNames) if (name === set) return dir;
    if (!this.unlocked) return set;
    const dir = hmac(this.unlocked.keys.names, set).toString('hex');
    this.setNames.set(dir, set);
    return dir;
  }

  private manifestName(set: string, generation: number): string {
    return generationName(this.setDir(set), generation, this.encrypted);
  }

  async listGenerations(set?: string): Promise<GenerationRef[]> {
    if (set !== undefined) checkSetName(set);
    const names = await this.backend.list(set === undefined ? GENERATIONS_PREFIX : `${GENERATIONS_PREFIX}${this.setDir(set)}/`);
    const parsed = names.map((n) => parseGenerationName(n, this.encrypted)).filter((g) => g !== undefined);
    const refs: GenerationRef[] = [];
    for (const g of parsed) refs.push({ set: set ?? await this.setOfDir(g.dir, parsed), generation: g.generation });
    return refs.sort((a, b) => (a.set < b.set ? -1 : a.set > b.set ? 1 : a.generation - b.generation));
  }

  /**
   * The set a hidden directory belongs to, learnt from its newest manifest that opens. When
   * none does, the set is called `unknown-<first 16 hex digits>`: reading its generations
   * then fails as damage, naming their objects.
   */
  private async setOfDir(dir: string, all: readonly { dir: string; generation: number }[]): Promise<string> {
    const known = this.setNames.get(dir);
    if (known !== undefined || !this.unlocked) return known ?? dir;
    const generations = all.filter((g) => g.dir === dir).map((g) => g.generation).sort((a, b) => b - a);
    for (const generation of generations) {
      const name = generationName(dir, generation, true);
      try {
        const m = decodeManifest(this.objects.open(name, name, await this.backend.get(name)), name);
        if (hmac(this.unlocked.keys.names, m.set).toString('hex') === dir) {
          this.setNames.set(dir, m.set);
          return m.set;
        }
      } catch (err) {
        if (!(err instanceof RepositoryDamagedError || err instanceof NotFoundError)) throw err;
      }
    }
    const unknown = `unknown-${dir.slice(0, 16)}`;
    this.setNames.set(dir, unknown);
    return unknown;
  }

  async readGeneration(set: string, generation: number): Promise<GenerationManifest> {
    checkSetName(set);
    const name = this.manifestName(set, generation);
    let raw: Buffer;
    try {
      raw = await this.backend.get(name);
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`set ${set} has no generation ${generation}`, { cause: err });
      throw err;
    }
    const what = this.encrypted ? `generation ${generation} of set ${set} (${name})` : `generation ${name}`;
    const m = decodeManifest(this.objects.open(what, name, raw), name);
    if (m.set !== set || m.generation !== generation) {
      throw new RepositoryDamagedError(`reading ${what} failed: it says it is ${m.set} generation ${m.generation}`);
    }
    return m;
  }

  /** Writes the manifest; throws AlreadyExistsError if that number was taken meanwhile. */
  async commitGeneration(manifest: GenerationManifest): Promise<void> {
    checkSetName(manifest.set);
    const name = this.manifestName(manifest.set, manifest.generation);
    await this.backend.put(name, this.objects.seal(name, encodeManifest(manifest)));
  }

  /** Until when an object lock keeps a generation's manifest, if it does. */
  async generationLockedUntil(ref: GenerationRef): Promise<number | undefined> {
    return (await this.backend.stat(this.manifestName(ref.set, ref.generation)))?.lockedUntilMs;
  }

  async removeGeneration(ref: GenerationRef): Promise<void> {
    await this.backend.remove(this.manifestName(ref.set, ref.generation));
  }
}
