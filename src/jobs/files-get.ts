/**
 * `files get`: files, symlinks and whole directories of a generation's filesystem copied to
 * a host directory (or a tar stream), with their modes and times; symlinks recreated as
 * links with their text, never followed. Files go to a staging directory first (inside the
 * target, so that putting them in place is a rename) and are moved only once all are there:
 * an interrupted or failed get removes the staging directory and leaves the target as it was.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { AlreadyExistsError, IoError, UsageError } from '../errors.js';
import { quote } from '../files/guestfish.js';
import { lstat, readlink } from '../files/listing.js';
import { type TreeCounts, checkConflicts, countTree, moveInto } from '../files/place.js';
import { resolveGeneration } from './resolve.js';
import { type FilesEvents, guestPath, openFilesystem } from './files-session.js';
import type { FilesTarget } from './files-list.js';

export interface GetJob extends FilesTarget {
  readonly fs?: string;
  readonly paths: readonly string[];
  /** A host directory (created when missing), or a stream that gets a tar archive. */
  readonly to: { readonly dir: string } | { readonly tar: Writable };
  readonly overwrite: boolean;
  readonly signal?: AbortSignal;
  /** Bytes copied so far of an estimate of the total (directories by `du`). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface GetResult extends TreeCounts {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly fs: string;
  readonly to: string;
  readonly bytesRead: number;
}

function runTool(cmd: string, args: string[], stdout?: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    if (stdout) child.stdout!.pipe(stdout, { end: false });
    child.on('error', (e) => reject(new IoError(`${cmd} failed to start: ${e.message}`)));
    child.on('close', (code, sig) => (code === 0 ? resolve() : reject(new IoError(`${cmd} ${args[0]} failed (${sig ?? `exit ${code}`}): ${err.trim().split('\n')[0] ?? ''}`))));
  });
}

async function sizeOf(p: string): Promise<number> {
  try { return (await fs.lstat(p)).size; } catch { return 0; }
}

/** The name a path keeps in the target: its last component ("" for the filesystem's root, whose entries go straight in). */
function keptName(p: string): string {
  return p === '/' ? '' : p.slice(p.lastIndexOf('/') + 1);
}

export async function getFiles(job: GetJob, events: FilesEvents): Promise<GetResult> {
  if (job.paths.length === 0) throw new UsageError('files get: give at least one PATH to copy');
  const paths = job.paths.map(guestPath);
  const names = paths.map(keptName);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`files get: two paths end in ${JSON.stringify(dup)}: they would land on the same name in the target; get them one at a time`);
  if (names.includes('') && names.length > 1) throw new UsageError('files get: / goes alone (its entries land straight in the target)');
  const targetDir = 'dir' in job.to ? path.resolve(job.to.dir) : undefined;
  if (targetDir !== undefined) {
    await fs.mkdir(targetDir, { recursive: true });
    // Before launching anything: an existing file in the way is refused at once.
    if (!job.overwrite) {
      for (const n of names) {
        const at = path.join(targetDir, n);
        const s = await fs.lstat(at).catch(() => undefined);
        if (s && !s.isDirectory()) throw new AlreadyExistsError(`${at} exists: not overwritten (give --overwrite to replace it); nothing was written`);
      }
    }
  }
  const manifest = await resolveGeneration(job.repo, job.set, job.generation);
  const staging = await fs.mkdtemp(targetDir !== undefined ? path.join(targetDir, '.vmbkp-get-') : path.join(tmpdir(), 'vmbkp-get-'));
  let session: Awaited<ReturnType<typeof openFilesystem>>['session'] | undefined;
  const onAbort = () => { void session?.abort(); };
  job.signal?.addEventListener('abort', onAbort);
  const interrupted = () => new IoError(`files get was interrupted (${String(job.signal?.reason ?? 'aborted')}): the files copied so far were removed, ${targetDir ?? 'the tar stream'} was left as it was`);
  try {
    if (job.signal?.aborted) throw interrupted();
    const opened = await openFilesystem(job.repo, manifest, job.disk, job.fs, events);
    session = opened.session;
    if (job.signal?.aborted) throw interrupted();
    const fish = session.fish;
    const what = `set ${manifest.set} generation ${manifest.generation} disk ${opened.disk.name} filesystem ${opened.filesystem.name}`;
    const stats = [];
    let total = 0;
    for (const p of paths) {
      const s = await lstat(fish, p, what);
      if (s.type === 'other') throw new UsageError(`${p} in ${what} is not a file, directory or symlink`);
      stats.push(s);
      if (s.type === 'file') total += s.size;
      if (s.type === 'directory') total += 1024 * Number((await fish.call(`du ${quote(p)}`)).trim());
    }
    let done = 0;
    let current: string | undefined;
    const timer = job.onProgress ? setInterval(() => {
      void (current ? sizeOf(current) : Promise.resolve(0)).then((n) => job.onProgress!(done + n, Math.max(total, done + n)));
    }, 500) : undefined;
    try {
      for (const [i, p] of paths.entries()) {
        const s = stats[i]!;
        const at = names[i] === '' ? path.join(staging, '.root') : path.join(staging, names[i]!);
        if (s.type === 'symlink') {
          await fs.symlink(await readlink(fish, p, what), at);
          await fs.lutimes(at, new Date(s.atimeMs), new Date(s.mtimeMs));
        } else if (s.type === 'file') {
          current = at;
          await fish.call(`download ${quote(p)} ${quote(at)}`);
          await fs.chmod(at, s.mode);
          await fs.utimes(at, new Date(s.atimeMs), new Date(s.mtimeMs));
          done += s.size;
        } else {
          const tar = path.join(staging, `.${i}.tar`);
          current = tar;
          await fish.call(`tar-out ${quote(p)} ${quote(tar)} numericowner:true`);
          current = undefined;
          if (job.signal?.aborted) throw interrupted();
          await fs.mkdir(at);
          const keepOwners = targetDir === undefined && process.getuid?.() === 0;
          await runTool('tar', ['-x', '-p', keepOwners ? '--same-owner' : '--no-same-owner', '--numeric-owner', '-f', tar, '-C', at]);
          done += await sizeOf(tar);
          await fs.rm(tar);
        }
        current = undefined;
        if (job.signal?.aborted) throw interrupted();
      }
    } finally {
      if (timer) clearInterval(timer);
    }
    const counts: TreeCounts = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    for (const [i, n] of names.entries()) {
      const removed = await countTree(n === '' ? path.join(staging, '.root') : path.join(staging, n), counts);
      for (const r of removed) events.onWarning?.(`${paths[i]}: left out ${path.relative(staging, r)}: not a file, directory or symlink`);
    }
    if (job.signal?.aborted) throw interrupted();
    if (targetDir !== undefined) {
      for (const n of names) {
        const staged = n === '' ? path.join(staging, '.root') : path.join(staging, n);
        await checkConflicts(staged, n === '' ? targetDir : path.join(targetDir, n), job.overwrite);
      }
      for (const n of names) {
        const staged = n === '' ? path.join(staging, '.root') : path.join(staging, n);
        await moveInto(staged, n === '' ? targetDir : path.join(targetDir, n));
      }
    } else {
      const out = (job.to as { tar: Writable }).tar;
      const members = names.map((n) => (n === '' ? '.root' : n));
      await runTool('tar', ['-c', '-f', '-', '--numeric-owner', '-C', staging, ...(names[0] === '' ? ['-C', path.join(staging, '.root'), '.'] : members)], out);
    }
    job.onProgress?.(Math.max(total, done), Math.max(total, done));
    return {
      set: manifest.set, generation: manifest.generation, disk: opened.disk.name, fs: opened.filesystem.name,
      to: targetDir ?? '-', ...counts, bytesRead: session.bytesRead(),
    };
  } catch (err) {
    if (job.signal?.aborted) throw interrupted();
    throw err;
  } finally {
    job.signal?.removeEventListener('abort', onAbort);
    await fs.rm(staging, { recursive: true, force: true });
    await session?.close().catch(() => {});
  }
}
