/**
 * Opens disk sources and targets from their URIs. `file:PATH` (or a plain path) today;
 * NBD and vSphere transports register here as they arrive.
 */
import { InputError } from '../errors.js';
import { FileSource, FileTarget } from './file.js';
import type { DiskSource, DiskTarget } from './types.js';

function filePath(uri: string): string | undefined {
  if (uri.startsWith('file://')) return decodeURIComponent(new URL(uri).pathname);
  if (uri.startsWith('file:')) return uri.slice('file:'.length);
  if (!/^[a-z][a-z0-9+.-]*:/i.test(uri)) return uri;
  return undefined;
}

export async function openSource(uri: string): Promise<DiskSource> {
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`disk source ${JSON.stringify(uri)} is not supported: use file:PATH`);
  return FileSource.open(path);
}

export async function openTarget(uri: string, size: number, overwrite: boolean): Promise<DiskTarget> {
  const path = filePath(uri);
  if (path === undefined || path === '') throw new InputError(`restore target ${JSON.stringify(uri)} is not supported: use file:PATH`);
  return FileTarget.create(path, size, overwrite);
}
