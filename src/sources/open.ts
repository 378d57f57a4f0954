/**
 * Opens disk sources and targets from their URIs: `file:PATH` (or a plain path) and
 * NBD URIs; restore targets also `qcow2:PATH`.
 */
import { InputError } from '../errors.js';
import { isNbdUri } from '../nbd/uri.js';
import { FileSource, FileTarget } from './file.js';
import { NbdSource, NbdTarget, dirtyBitmapContext } from './nbd.js';
import { Qcow2Target } from './qcow2.js';
import type { DiskSource, DiskTarget } from './types.js';

/** The path of a `file:` URI or a plain path; undefined for any other scheme. */
export function filePath(uri: string): string | undefined {
  if (uri.startsWith('file://')) return decodeURIComponent(new URL(uri).pathname);
  if (uri.startsWith('file:')) return uri.slice('file:'.length);
  if (!/^[a-z][a-z0-9+.-]*:/i.test(uri)) return uri;
  return undefined;
}

export async function openSource(uri: string): Promise<DiskSource> {
  if (isNbdUri(uri)) return NbdSource.open(uri);
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`disk source ${JSON.stringify(uri)} is not supported: use file:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  return FileSource.open(path);
}

/**
 * Opens an NBD disk whose QEMU dirty bitmap `bitmap` tracks its changes; returns the
 * change token that the source's changedSince answers from that bitmap.
 */
export async function openSourceWithBitmap(uri: string, bitmap: string): Promise<{ source: DiskSource; token: string }> {
  if (!isNbdUri(uri)) throw new InputError(`--changed-bitmap needs an NBD disk (nbd://… or nbd+unix://…), not ${JSON.stringify(uri)}`);
  return { source: await NbdSource.open(uri, bitmap), token: dirtyBitmapContext(bitmap) };
}

export async function openTarget(uri: string, size: number, overwrite: boolean): Promise<DiskTarget> {
  if (isNbdUri(uri)) return NbdTarget.open(uri, size);
  if (uri.startsWith('qcow2:') && uri.length > 'qcow2:'.length) return Qcow2Target.create(uri.slice('qcow2:'.length), size, overwrite);
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`restore target ${JSON.stringify(uri)} is not supported: use file:PATH (sparse raw), qcow2:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  return FileTarget.create(path, size, overwrite);
}
