/**
 * Opens disk sources and targets from their URIs: `file:PATH` (or a plain path) and
 * NBD URIs; vSphere transports register here as they arrive.
 */
import { InputError } from '../errors.js';
import { isNbdUri } from '../nbd/uri.js';
import { FileSource, FileTarget } from './file.js';
import { NbdSource, NbdTarget } from './nbd.js';
import type { DiskSource, DiskTarget } from './types.js';

function filePath(uri: string): string | undefined {
  if (uri.startsWith('file://')) return decodeURIComponent(new URL(uri).pathname);
  if (uri.startsWith('file:')) return uri.slice('file:'.length);
  if (!/^[a-z][a-z0-9+.-]*:/i.test(uri)) return uri;
  return undefined;
}

/** Opens a disk; `bitmap` (NBD only) names a QEMU dirty bitmap for changed extents. */
export async function openSource(uri: string, bitmap?: string): Promise<DiskSource> {
  if (isNbdUri(uri)) return NbdSource.open(uri, bitmap);
  if (bitmap !== undefined) throw new InputError(`--changed-bitmap needs an NBD disk (nbd://… or nbd+unix://…), not ${JSON.stringify(uri)}`);
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`disk source ${JSON.stringify(uri)} is not supported: use file:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  return FileSource.open(path);
}

export async function openTarget(uri: string, size: number, overwrite: boolean): Promise<DiskTarget> {
  if (isNbdUri(uri)) return NbdTarget.open(uri, size);
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`restore target ${JSON.stringify(uri)} is not supported: use file:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  return FileTarget.create(path, size, overwrite);
}
