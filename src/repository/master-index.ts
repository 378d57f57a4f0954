/**
 * The master index: where every blob of the repository is, without holding it all in
 * memory. Index files merged into the local lookup file (lookup-file.ts) are searched in
 * place there; the few not merged yet (written since, by this process or others) are held
 * in memory. Opening lists the index files and reads only those the lookup file does not
 * cover; when they hold more blobs than memoryEntries(), they are merged into a new lookup
 * file (lookup-build.ts). A process that writes many blobs (a large full backup) merges
 * its own new index files the same way once they hold more than memoryEntries() blobs, so
 * its memory stays flat however much it stores. The lookup file is never trusted over the
 * repository: one that covers an index file the repository no longer lists (gc rewrote the
 * index) is stale and rebuilt, one that fails its checks is removed and rebuilt.
 */
import fs from 'node:fs';
import { NotFoundError, RepositoryDamagedError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { toHex } from './digest.js';
import { type BlobLocation, type IndexedPack, indexFileTables } from './index-file.js';
import { indexFileContent, openIndexFile } from './index-files.js';
import { INDEX_PREFIX } from './layout.js';
import { buildLookupFile } from './lookup-build.js';
import { LookupCorruptError, LookupFile } from './lookup-file.js';
import type { ObjectCodec } from './object-codec.js';

/** How often load lists again while a concurrent gc rewrites the index under it. */
const RELOAD_PASSES = 3;
/** Index files read ahead of the one being added: on object storage each read is a round trip. */
const READ_AHEAD = 8;

export interface MasterIndexOptions {
  /** The lookup file's path; undefined keeps everything in memory (no cache). */
  readonly lookupPath: string | undefined;
  /** Blobs held in memory before they are merged into the lookup file. */
  readonly memoryEntries: number;
}

export class MasterIndex {
  private file: LookupFile | undefined;
  private fileOpened = false;
  private delta = new Map<string, BlobLocation>();
  private deltaFiles = new Set<string>();
  /** Blobs of this process's index files being merged into the lookup file: answered from here until the merge ends. */
  private spilling = new Map<string, BlobLocation>();
  private spillingFiles = new Set<string>();
  private spill: Promise<void> | undefined;
  private loading = false;
  /** entries() iterations under way, and lookup files replaced meanwhile (closed when they end). */
  private iterating = 0;
  private readonly retired: LookupFile[] = [];
  private loaded = false;
  /** Index files read from storage, for tests and the benchmark. */
  indexFilesRead = 0;

  constructor(
    private readonly backend: StorageBackend,
    private readonly objects: ObjectCodec,
    private readonly repositoryId: string,
    private readonly options: MasterIndexOptions,
  ) {}

  /**
   * Reads the index files not read or merged yet, so a long-running process sees what
   * others stored since. When a file it covers is gone, gc or prune rewrote the index: the
   * index is built again off to the side and swapped in, so that no lookup points into a
   * pack gc removed. A damaged index file goes to `onDamaged` when given, else is thrown.
   */
  async load(onDamaged?: (err: RepositoryDamagedError) => void): Promise<void> {
    await this.settled();
    this.loading = true;
    try {
      await this.loadFiles(onDamaged);
    } finally {
      this.loading = false;
    }
  }

  /** Ends when no merge of this process's own index files is under way. */
  async settled(): Promise<void> {
    while (this.spill) await this.spill;
  }

  private async loadFiles(onDamaged?: (err: RepositoryDamagedError) => void): Promise<void> {
    for (let pass = 1; ; pass++) {
      const names = await this.backend.list(INDEX_PREFIX);
      const listed = new Set(names);
      if (!this.fileOpened) { this.file = this.openFile(); this.fileOpened = true; }
      const stale = [...(this.file?.covers ?? []), ...this.deltaFiles].some((n) => !listed.has(n));
      let file = stale ? undefined : this.file;
      let delta = stale ? new Map<string, BlobLocation>() : this.delta;
      let files = stale ? new Set<string>() : this.deltaFiles;
      const todo = names.filter((n) => !files.has(n) && !file?.covers.has(n));
      let vanished = false;
      let merge = false;
      const reads: (Promise<Buffer> | undefined)[] = [];
      const readAhead = (i: number): void => {
        if (i >= todo.length || reads[i]) return;
        const read = this.read(todo[i]!);
        read.catch(() => {}); // awaited below, unless an earlier file fails the load
        reads[i] = read;
      };
      for (let i = 0; i < READ_AHEAD; i++) readAhead(i);
      for (const [i, name] of todo.entries()) {
        if (this.options.lookupPath !== undefined && delta.size > this.options.memoryEntries) { merge = true; break; }
        readAhead(i + READ_AHEAD);
        try {
          const stored = await reads[i]!;
          reads[i] = undefined;
          openIndexFile(this.objects, name, stored, (digest, loc) => { if (!delta.has(digest)) delta.set(digest, loc); });
          files.add(name);
        } catch (err) {
          if (err instanceof NotFoundError) { vanished = true; continue; }
          if (onDamaged && err instanceof RepositoryDamagedError) onDamaged(err);
          else throw err;
        }
      }
      if (merge || (this.options.lookupPath !== undefined && delta.size > this.options.memoryEntries)) {
        // Too many to hold: everything not in the lookup file is merged into a new one.
        const pending = [...files, ...todo.filter((n) => !files.has(n))];
        // What was read into memory is merged from storage again: free it first, unless lookups of other jobs still use it.
        if (delta !== this.delta || !this.loaded) delta.clear();
        const result = await this.merge(file, pending, onDamaged);
        if (result.vanished > 0) vanished = true;
        file = result.file;
        delta = new Map();
        files = new Set();
      }
      if (this.file !== file) this.file?.close();
      this.file = file;
      this.delta = delta;
      this.deltaFiles = files;
      this.loaded = true;
      // A file removed between listing and reading was replaced by gc's new one, which the
      // listing may have missed: list again (gc writes the new one before removing the old).
      if (!vanished && !stale) return;
      if (pass >= RELOAD_PASSES) return;
    }
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  lookup(digestHex: string): BlobLocation | undefined {
    if (!this.loaded) throw new Error('repository index not loaded');
    const inMemory = this.delta.get(digestHex) ?? this.spilling.get(digestHex);
    if (inMemory || !this.file) return inMemory;
    try {
      return this.file.lookup(Buffer.from(digestHex, 'hex'));
    } catch (err) {
      if (err instanceof LookupCorruptError) this.discard();
      throw err;
    }
  }

  has(digestHex: string): boolean {
    return this.lookup(digestHex) !== undefined;
  }

  /** An index file this process wrote: its blobs are findable from now on. */
  indexed(name: string, packs: readonly IndexedPack[]): void {
    this.deltaFiles.add(name);
    for (const p of packs) {
      for (const e of p.entries) {
        const hex = toHex(e.digest);
        if (!this.delta.has(hex) && !this.spilling.has(hex)) {
          this.delta.set(hex, { pack: p.id, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength });
        }
      }
    }
    if (this.options.lookupPath !== undefined && this.delta.size > this.options.memoryEntries && !this.spill && !this.loading) {
      this.spill = this.spillDelta().finally(() => { this.spill = undefined; });
    }
  }

  /**
   * Merges the index files this process wrote into the lookup file, in bounded memory (they
   * are read back from storage), while lookups still find their blobs in memory. When the
   * merge fails (a full disk under the cache), they stay in memory, as before the merge.
   */
  private async spillDelta(): Promise<void> {
    this.spilling = this.delta;
    this.spillingFiles = this.deltaFiles;
    this.delta = new Map();
    this.deltaFiles = new Set();
    try {
      const { file } = await this.merge(this.file, [...this.spillingFiles]);
      if (this.file && this.file !== file) {
        if (this.iterating > 0) this.retired.push(this.file);
        else this.file.close();
      }
      this.file = file;
    } catch {
      for (const [hex, loc] of this.spilling) if (!this.delta.has(hex)) this.delta.set(hex, loc);
      for (const name of this.spillingFiles) this.deltaFiles.add(name);
    }
    this.spilling = new Map();
    this.spillingFiles = new Set();
  }

  /** Every indexed blob once: the lookup file's streamed in digest order, then those in memory. */
  *entries(): Generator<[string, BlobLocation]> {
    if (!this.loaded) throw new Error('repository index not loaded');
    // What is there now: a merge that ends meanwhile neither hides nor repeats a blob, and
    // the lookup file it replaces stays open until the last iteration ends.
    const file = this.file;
    const spilling = this.spilling;
    const delta = this.delta;
    this.iterating++;
    try {
      if (file) {
        try {
          yield* file.entries();
        } catch (err) {
          if (err instanceof LookupCorruptError) this.discard();
          throw err;
        }
      }
      yield* spilling.entries();
      yield* delta.entries();
    } finally {
      if (--this.iterating === 0) for (const f of this.retired.splice(0)) f.close();
    }
  }

  /** Index files this index holds (merged or in memory). */
  fileNames(): string[] {
    return [...(this.file?.covers ?? []), ...this.spillingFiles, ...this.deltaFiles];
  }

  /**
   * Reads and checks every index file the lookup file answers for (verify): the lookup file
   * was built from them when they were intact, so only reading them finds one damaged since.
   */
  async checkMerged(onDamaged: (err: RepositoryDamagedError) => void): Promise<void> {
    for (const name of [...(this.file?.covers ?? [])]) {
      try {
        indexFileTables(indexFileContent(this.objects, name, await this.read(name)), name);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // gc rewrote the index meanwhile
        if (err instanceof RepositoryDamagedError) onDamaged(err);
        else throw err;
      }
    }
  }

  /** Blobs searched in the lookup file and held in memory (for status and the benchmark). */
  get counts(): { merged: number; inMemory: number } {
    return { merged: this.file?.count ?? 0, inMemory: this.delta.size + this.spilling.size };
  }

  private async read(name: string): Promise<Buffer> {
    const stored = await this.backend.get(name);
    this.indexFilesRead++;
    return stored;
  }

  private openFile(): LookupFile | undefined {
    const path = this.options.lookupPath;
    if (path === undefined) return undefined;
    try {
      return LookupFile.open(path, this.repositoryId);
    } catch (err) {
      // None yet, or a cache directory that cannot be used: answered from memory (a merge may still fail).
      if (['ENOENT', 'ENOTDIR', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      if (err instanceof LookupCorruptError) { fs.rmSync(path, { force: true }); return undefined; }
      throw err;
    }
  }

  private async merge(base: LookupFile | undefined, names: string[], onDamaged?: (err: RepositoryDamagedError) => void): Promise<{ file: LookupFile; vanished: number }> {
    const path = this.options.lookupPath!;
    const read = async (name: string) => indexFileContent(this.objects, name, await this.read(name));
    let result;
    try {
      result = await buildLookupFile({ path, repositoryId: this.repositoryId, base, names, read, ...(onDamaged ? { onDamaged } : {}) });
    } catch (err) {
      if (!(err instanceof LookupCorruptError) || base === undefined) throw err;
      // The file merged into failed its checks: built again from every index file.
      fs.rmSync(path, { force: true });
      const all = await this.backend.list(INDEX_PREFIX);
      result = await buildLookupFile({ path, repositoryId: this.repositoryId, names: all, read, ...(onDamaged ? { onDamaged } : {}) });
    }
    return { file: LookupFile.open(path, this.repositoryId), vanished: result.vanished };
  }

  /** A lookup file that failed a check is removed: the next load builds it again. */
  private discard(): void {
    if (this.file) fs.rmSync(this.file.path, { force: true });
    this.fileOpened = false;
  }
}
