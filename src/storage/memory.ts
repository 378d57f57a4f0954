/**
 * MemoryBackend: a repository held in this process's memory, for fast tests of the layers
 * above storage. It keeps the StorageBackend contract the way a durable backend does:
 * write-once puts that appear whole or not at all, ranged gets, listing by folder.
 *
 * Bytes are copied on the way in and on the way out, so no caller can change what is
 * stored through a buffer it still holds.
 */
import { AlreadyExistsError, IoError, NotFoundError } from '../errors.js';
import { type ByteRange, type ObjectStat, type StorageBackend, checkObjectName } from './backend.js';

interface StoredObject {
  readonly bytes: Buffer;
  readonly mtimeMs: number;
}

export class MemoryBackend implements StorageBackend {
  readonly location: string;
  private readonly objects = new Map<string, StoredObject>();

  constructor(label = 'memory') {
    this.location = `memory:${label}`;
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    checkObjectName(name);
    const bytes = Buffer.concat(data instanceof Uint8Array ? [data] : data);
    // Check and insert without yielding: of concurrent puts of one name exactly one wins.
    if (this.objects.has(name)) {
      throw new AlreadyExistsError(`storing ${name} in ${this.location} failed: it exists already`);
    }
    this.objects.set(name, { bytes, mtimeMs: Date.now() });
  }

  async get(name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    checkObjectName(name);
    const stored = this.objects.get(name);
    if (!stored) throw new NotFoundError(`reading ${name} from ${this.location} failed: no such object`);
    if (!range) return Buffer.from(stored.bytes);
    const end = range.offset + range.length;
    if (range.offset < 0 || range.length < 0 || end > stored.bytes.length) {
      throw new IoError(`reading ${name} from ${this.location} at offset ${range.offset} failed: `
        + `object ends after ${stored.bytes.length} bytes, ${range.length} were wanted`);
    }
    if (!into) return Buffer.from(stored.bytes.subarray(range.offset, end));
    if (into.length < range.length) {
      throw new RangeError(`reading ${name}: the buffer holds ${into.length} bytes, ${range.length} were wanted`);
    }
    stored.bytes.copy(into, 0, range.offset, end);
    return into.subarray(0, range.length);
  }

  async stat(name: string): Promise<ObjectStat | undefined> {
    checkObjectName(name);
    const stored = this.objects.get(name);
    return stored && { size: stored.bytes.length, mtimeMs: stored.mtimeMs };
  }

  async list(prefix: string): Promise<string[]> {
    // A prefix names a folder, as in the local backend: "data/0" does not match "data/00/x".
    const dir = prefix.replace(/\/+$/, '');
    if (dir !== '') checkObjectName(dir);
    const under = dir === '' ? '' : `${dir}/`;
    return [...this.objects.keys()].filter((name) => name.startsWith(under));
  }

  async remove(name: string): Promise<void> {
    checkObjectName(name);
    this.objects.delete(name);
  }

  /** A put here is never left half done, so there is nothing to sweep. */
  async sweep(_olderThanMs: number): Promise<number> {
    return 0;
  }
}
