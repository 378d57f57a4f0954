/**
 * Index files as stored objects: named by the SHA-256 of their stored bytes, checked
 * against that name on every read, opened and sealed through the repository's ObjectCodec.
 * The format itself is index-file.ts.
 */
import { RepositoryDamagedError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { sha256 } from './digest.js';
import { type BlobLocation, type IndexedPack, decodeIndexFile, encodeIndexFile } from './index-file.js';
import { INDEX_PREFIX, indexName } from './layout.js';
import type { ObjectCodec } from './object-codec.js';
import { putContentAddressed } from './write-once.js';

/** What an index file is sealed for: it is named by its stored content, so by its kind. */
const INDEX_OBJECT = 'index file';

/** Reads index file `name`, calling `add` for every blob it lists. */
export async function readIndexFile(backend: StorageBackend, objects: ObjectCodec, name: string, add: (digestHex: string, loc: BlobLocation) => void): Promise<void> {
  openIndexFile(objects, name, await backend.get(name), add);
}

/** Checks index file `name` as read from storage against its name and calls `add` for every blob it lists. */
export function openIndexFile(objects: ObjectCodec, name: string, stored: Buffer, add: (digestHex: string, loc: BlobLocation) => void): void {
  decodeIndexFile(indexFileContent(objects, name, stored), name, add);
}

/** Checks index file `name` as read from storage against its name; its content, opened. */
export function indexFileContent(objects: ObjectCodec, name: string, stored: Buffer): Buffer {
  if (sha256(stored).toString('hex') !== name.slice(INDEX_PREFIX.length)) {
    throw new RepositoryDamagedError(`reading index file ${name} failed: content does not match its name (corrupted)`);
  }
  return objects.open(`index file ${name}`, INDEX_OBJECT, stored);
}

/** Writes an index file listing `packs` (write-once: one of that name is the same file); returns its name. */
export async function writeIndexFile(backend: StorageBackend, objects: ObjectCodec, packs: readonly IndexedPack[]): Promise<string> {
  // Sealed before it is named: the name is the digest of what is stored.
  const stored = objects.seal(INDEX_OBJECT, encodeIndexFile(packs));
  const id = sha256(stored).toString('hex');
  const name = indexName(id);
  await putContentAddressed(backend, name, id, stored);
  return name;
}
