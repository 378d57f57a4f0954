/**
 * Putting extracted files in place on the host. Everything is first extracted into a
 * staging directory inside the target (same filesystem: moves are renames), then checked,
 * then moved. Nothing is followed: entries are lstat'ed, symlinks are moved as links, and a
 * directory is merged into an existing one only when that is a real directory (not a
 * symlink that could lead out of the target). Without `overwrite`, any existing
 * non-directory in the way stops the whole move before anything is moved.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AlreadyExistsError } from '../errors.js';

export interface TreeCounts {
  files: number;
  directories: number;
  symlinks: number;
  /** Bytes of the regular files. */
  bytes: number;
}

/**
 * Counts a staged tree; removes what is neither a file, a directory nor a symlink (device
 * nodes, FIFOs, sockets: not files anyone restores, and a device node is a risk on the host).
 * Returns the paths removed.
 */
export async function countTree(root: string, counts: TreeCounts): Promise<string[]> {
  const removed: string[] = [];
  const visit = async (p: string): Promise<void> => {
    const s = await fs.lstat(p);
    if (s.isSymbolicLink()) counts.symlinks++;
    else if (s.isFile()) { counts.files++; counts.bytes += s.size; }
    else if (s.isDirectory()) {
      counts.directories++;
      for (const n of await fs.readdir(p)) await visit(path.join(p, n));
    } else {
      await fs.rm(p, { force: true });
      removed.push(p);
    }
  };
  await visit(root);
  return removed;
}

async function lstatOrUndefined(p: string) {
  try { return await fs.lstat(p); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The first path `from` would replace at `to` (a non-directory in the way), or undefined. */
export async function firstConflict(from: string, to: string): Promise<string | undefined> {
  const there = await lstatOrUndefined(to);
  if (!there) return undefined;
  const here = await fs.lstat(from);
  if (!(here.isDirectory() && there.isDirectory())) return to;
  for (const n of await fs.readdir(from)) {
    const c = await firstConflict(path.join(from, n), path.join(to, n));
    if (c) return c;
  }
  return undefined;
}

/** Refuses when anything at `to` would be replaced, unless `overwrite`. */
export async function checkConflicts(from: string, to: string, overwrite: boolean): Promise<void> {
  if (overwrite) return;
  const c = await firstConflict(from, to);
  if (c) throw new AlreadyExistsError(`${c} exists: not overwritten (give --overwrite to replace it); nothing was written`);
}

/**
 * Moves `from` to `to`: a rename where nothing is in the way; into an existing real
 * directory entry by entry (its mode and times then taken from `from`); over anything else
 * (a file, a symlink) by replacing it. A directory in the way of a non-directory is removed
 * only with `overwrite` (checkConflicts refused before otherwise).
 */
export async function moveInto(from: string, to: string): Promise<void> {
  const there = await lstatOrUndefined(to);
  const here = await fs.lstat(from);
  if (there && here.isDirectory() && there.isDirectory()) {
    for (const n of await fs.readdir(from)) await moveInto(path.join(from, n), path.join(to, n));
    await fs.chmod(to, here.mode & 0o7777);
    await fs.utimes(to, here.atime, here.mtime);
    return;
  }
  if (there) await fs.rm(to, { recursive: true, force: true });
  await fs.rename(from, to);
}
