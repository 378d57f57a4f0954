/** `files list` and `files ls`: the filesystems of a generation's disks, and a directory of one. */
import { listFilesystems } from '../files/filesystems.js';
import { type GuestEntry, listDirectory, lstat, readlink } from '../files/listing.js';
import type { EntryType } from '../files/stat.js';
import type { Repository } from '../repository/repository.js';
import { type FilesEvents, FilesSession, guestPath, openFilesystem, pickDisk } from './files-session.js';
import { resolveGeneration } from './resolve.js';

export interface FilesystemInfo {
  readonly disk: string;
  readonly name: string;
  readonly device: string;
  readonly type: string;
  readonly size: number;
  readonly label: string | null;
}

export interface FilesListResult {
  readonly set: string;
  readonly generation: number;
  readonly filesystems: FilesystemInfo[];
  readonly bytesRead: number;
}

export interface FilesTarget {
  readonly repo: Repository;
  readonly set: string;
  /** A generation selector, as restore takes it. */
  readonly generation: string;
  readonly disk?: string;
}

/** The filesystems of one disk, or of every disk of the generation (one appliance for all). */
export async function listGenerationFilesystems(t: FilesTarget, events: FilesEvents): Promise<FilesListResult> {
  const manifest = await resolveGeneration(t.repo, t.set, t.generation);
  const disks = t.disk !== undefined ? [pickDisk(manifest, t.disk)] : manifest.disks;
  const session = await FilesSession.open(t.repo, disks.map((disk) => ({ manifest, disk })), events);
  try {
    const found = await listFilesystems(session.fish);
    const filesystems = found.map((f) => ({ disk: disks[f.drive]!.name, name: f.name, device: f.device.replace(/^\/dev\/[sv]d[a-z]+/, '/dev/sda'), type: f.type, size: f.size, label: f.label }));
    return { set: manifest.set, generation: manifest.generation, filesystems, bytesRead: session.bytesRead() };
  } finally {
    await session.close();
  }
}

export interface FileEntry {
  readonly name: string;
  readonly type: EntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: string;
  readonly target?: string;
}

export interface FilesLsResult {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly fs: string;
  readonly path: string;
  readonly entries: FileEntry[];
  readonly bytesRead: number;
}

export function fileEntry(e: GuestEntry): FileEntry {
  return {
    name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtime: new Date(e.mtimeMs).toISOString(),
    ...(e.target !== undefined ? { target: e.target } : {}),
  };
}

/** A directory's entries (or the one entry of a file), as `ls -l` shows them. */
export async function listPath(t: FilesTarget & { readonly fs?: string; readonly path: string }, events: FilesEvents): Promise<FilesLsResult> {
  const p = guestPath(t.path);
  const manifest = await resolveGeneration(t.repo, t.set, t.generation);
  const { session, filesystem, disk } = await openFilesystem(t.repo, manifest, t.disk, t.fs, events);
  try {
    const what = `set ${manifest.set} generation ${manifest.generation} disk ${disk.name} filesystem ${filesystem.name}`;
    const s = await lstat(session.fish, p, what);
    let entries: GuestEntry[];
    if (s.type === 'directory') entries = await listDirectory(session.fish, p, what);
    else entries = [{ ...s, name: p.slice(p.lastIndexOf('/') + 1), ...(s.type === 'symlink' ? { target: await readlink(session.fish, p, what) } : {}) }];
    return {
      set: manifest.set, generation: manifest.generation, disk: disk.name, fs: filesystem.name, path: p,
      entries: entries.map(fileEntry), bytesRead: session.bytesRead(),
    };
  } finally {
    await session.close();
  }
}
