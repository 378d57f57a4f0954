/**
 * One regular file of a generation's filesystem copied to a private temporary directory on
 * the host, for a caller that streams it elsewhere (the server's download) and then calls
 * `remove`. Anything but a regular file is refused: a directory has no bytes to stream.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { quote } from '../files/guestfish.js';
import { lstat } from '../files/listing.js';
import { type FilesEvents, guestPath, openFilesystem } from './files-session.js';
import type { FilesTarget } from './files-list.js';
import { resolveGeneration } from './resolve.js';

export interface ReadFileResult {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly fs: string;
  readonly path: string;
  /** The file's last path component, for a download's name. */
  readonly name: string;
  readonly size: number;
  readonly mtime: string;
  /** The copy on the host, in a directory only this process can read. */
  readonly hostFile: string;
  readonly bytesRead: number;
  /** Removes the copy and its directory. */
  remove(): Promise<void>;
}

export async function readGenerationFile(t: FilesTarget & { readonly fs?: string; readonly path: string }, events: FilesEvents): Promise<ReadFileResult> {
  const p = guestPath(t.path);
  if (p === '/') throw new UsageError('/ is a directory: only a regular file can be read');
  const manifest = await resolveGeneration(t.repo, t.set, t.generation);
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'vmbkp-read-'));
  const remove = () => fs.rm(dir, { recursive: true, force: true });
  try {
    const { session, filesystem, disk } = await openFilesystem(t.repo, manifest, t.disk, t.fs, events);
    try {
      const what = `set ${manifest.set} generation ${manifest.generation} disk ${disk.name} filesystem ${filesystem.name}`;
      const s = await lstat(session.fish, p, what);
      if (s.type !== 'file') throw new UsageError(`${p} in ${what} is a ${s.type === 'other' ? 'special file' : s.type}: only a regular file can be read`);
      const hostFile = path.join(dir, 'content');
      await session.fish.call(`download ${quote(p)} ${quote(hostFile)}`);
      return {
        set: manifest.set, generation: manifest.generation, disk: disk.name, fs: filesystem.name, path: p, name: p.slice(p.lastIndexOf('/') + 1),
        size: (await fs.stat(hostFile)).size, mtime: new Date(s.mtimeMs).toISOString(), hostFile, bytesRead: session.bytesRead(), remove,
      };
    } finally {
      await session.close();
    }
  } catch (err) {
    await remove();
    throw err;
  }
}
