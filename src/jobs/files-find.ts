/**
 * `files find`: paths under a directory whose base name matches a glob (and whose mtime is
 * within bounds), in one or several generations, with what changed between them.
 *
 * Generations share one appliance, each disk mounted at a mount point of its own (XFS with
 * `nouuid`). LVM cannot be shared: the same volume group on two drives is a duplicate PV and
 * will not activate, so with LVM each generation gets an appliance of its own, several at
 * once where memory allows.
 */
import { freemem } from 'node:os';
import path from 'node:path';
import { mapConcurrently } from '../concurrency.js';
import { NotFoundError, UsageError } from '../errors.js';
import { hasLvm, listFilesystems } from '../files/filesystems.js';
import { quote } from '../files/guestfish.js';
import { findUnder, lstat, statNames } from '../files/listing.js';
import type { EntryType } from '../files/stat.js';
import type { DiskRecord, GenerationManifest } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import { type FilesEvents, FilesSession, guestPath, mountFilesystem, pickDisk, pickFilesystem } from './files-session.js';
import { findDisk, resolveGeneration } from './resolve.js';

/** Which generations: one selector, or all of them, a list of numbers, or a range A..B. */
export type GenerationsSpec =
  | { readonly kind: 'one'; readonly selector: string }
  | { readonly kind: 'all' }
  | { readonly kind: 'list'; readonly numbers: readonly number[] }
  | { readonly kind: 'range'; readonly from: number; readonly to: number };

export function parseGenerationsSpec(s: string): GenerationsSpec {
  if (s === 'all') return { kind: 'all' };
  let m = /^(\d+)\.\.(\d+)$/.exec(s);
  if (m) {
    const from = Number(m[1]);
    const to = Number(m[2]);
    if (from > to) throw new UsageError(`--generations ${s}: the range runs backwards`);
    return { kind: 'range', from, to };
  }
  m = /^\d+(,\d+)*$/.exec(s);
  if (m) return { kind: 'list', numbers: [...new Set(s.split(',').map(Number))].sort((a, b) => a - b) };
  throw new UsageError(`--generations needs all, N,M,… or A..B, got ${JSON.stringify(s)}`);
}

export interface FindVersion {
  readonly generation: number;
  readonly type: EntryType;
  readonly size: number;
  readonly mtime: string;
  readonly sha256?: string;
}

export interface FindMatch {
  readonly path: string;
  readonly versions: FindVersion[];
  readonly changed: boolean;
}

export interface FindResult {
  readonly set: string;
  readonly disk: string;
  readonly fs: string;
  readonly generations: number[];
  readonly matches: FindMatch[];
  readonly bytesRead: number;
}

export interface FindJob {
  readonly repo: Repository;
  readonly set: string;
  readonly generations: GenerationsSpec;
  readonly disk?: string;
  readonly fs?: string;
  readonly path: string;
  /** A shell glob on the base name (`*`, `?`, `[…]`); every entry without one. */
  readonly name?: string;
  readonly newer?: Date;
  readonly older?: Date;
}

export function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) { re += '\\['; continue; }
      const body = glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
      re += `[${body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

async function selectGenerations(repo: Repository, set: string, spec: GenerationsSpec): Promise<GenerationManifest[]> {
  if (spec.kind === 'one') return [await resolveGeneration(repo, set, spec.selector)];
  const have = (await repo.listGenerations(set)).map((g) => g.generation);
  if (have.length === 0) throw new NotFoundError(`set ${set} has no generations in ${repo.location}`);
  let wanted: number[];
  if (spec.kind === 'all') wanted = have;
  else if (spec.kind === 'range') wanted = have.filter((g) => g >= spec.from && g <= spec.to);
  else {
    const missing = spec.numbers.filter((n) => !have.includes(n));
    if (missing.length > 0) throw new NotFoundError(`set ${set} has no generation ${missing.join(', ')} (it has: ${have.join(', ')})`);
    wanted = [...spec.numbers];
  }
  if (wanted.length === 0) throw new NotFoundError(`set ${set} has no generation in ${spec.kind === 'range' ? `${spec.from}..${spec.to}` : 'that list'} (it has: ${have.join(', ')})`);
  const out: GenerationManifest[] = [];
  for (const g of wanted) out.push(await repo.readGeneration(set, g));
  return out;
}

/** The matches of one generation's filesystem mounted at `root`: guest path → version. */
async function searchOne(session: FilesSession, root: string, job: FindJob, p: string, generation: number, digests: boolean, what: string): Promise<Map<string, FindVersion> | undefined> {
  const fish = session.fish;
  const top = root === '/' ? p : path.posix.join(root, p);
  try {
    const s = await lstat(fish, top, what);
    if (s.type !== 'directory') throw new UsageError(`find: ${p} in ${what} is not a directory`);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const name = job.name !== undefined ? globRegExp(job.name) : undefined;
  const byDir = new Map<string, string[]>();
  for (const rel of await findUnder(fish, top, what)) {
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (name && !name.test(base)) continue;
    const dir = path.posix.dirname(rel);
    byDir.set(dir, [...(byDir.get(dir) ?? []), base]);
  }
  const out = new Map<string, FindVersion>();
  for (const [dir, names] of byDir) {
    for (const e of await statNames(fish, path.posix.join(top, dir), names, what)) {
      if (e.type === 'other') continue;
      if (job.newer && e.mtimeMs <= job.newer.getTime()) continue;
      if (job.older && e.mtimeMs >= job.older.getTime()) continue;
      const guest = path.posix.join(p, dir, e.name);
      let sha256: string | undefined;
      if (digests && e.type === 'file') sha256 = (await fish.call(`checksum sha256 ${quote(path.posix.join(top, dir, e.name))}`)).trim();
      out.set(guest, { generation, type: e.type, size: e.size, mtime: new Date(e.mtimeMs).toISOString(), ...(sha256 !== undefined ? { sha256 } : {}) });
    }
  }
  return out;
}

/** Appliances for LVM disks, one per generation: what one costs in memory, with room to spare. */
const APPLIANCE_BYTES = 1.5 * 1024 ** 3;

export async function findFiles(job: FindJob, events: FilesEvents): Promise<FindResult> {
  const p = guestPath(job.path);
  const manifests = await selectGenerations(job.repo, job.set, job.generations);
  const newest = manifests[manifests.length - 1]!;
  const diskName = pickDisk(newest, job.disk).name;
  const disks: { manifest: GenerationManifest; disk: DiskRecord }[] = manifests.map((manifest) => ({ manifest, disk: findDisk(manifest, diskName) }));
  const digests = disks.length > 1;
  const results: (Map<string, FindVersion> | undefined)[] = [];
  let bytesRead = 0;
  let fsName = '';
  const searchIn = async (session: FilesSession, indexes: readonly number[]) => {
    const all = await listFilesystems(session.fish);
    for (const [drive, i] of indexes.entries()) {
      const { manifest, disk } = disks[i]!;
      const f = pickFilesystem(all, drive, disk.name, job.fs);
      fsName = f.name;
      const root = `/g${manifest.generation}`;
      await mountFilesystem(session.fish, f, disk.name, root);
      results[i] = await searchOne(session, root, job, p, manifest.generation, digests, `set ${manifest.set} generation ${manifest.generation} disk ${disk.name} filesystem ${f.name}`);
    }
  };
  const shared = await FilesSession.open(job.repo, disks, events);
  let lvm = false;
  try {
    lvm = disks.length > 1 && await hasLvm(shared.fish);
    if (!lvm) await searchIn(shared, disks.map((_, i) => i));
  } finally {
    bytesRead += shared.bytesRead();
    await shared.close();
  }
  if (lvm) {
    const parallel = Math.max(1, Math.min(4, Math.floor(freemem() / APPLIANCE_BYTES)));
    await mapConcurrently(disks, parallel, async (d, i) => {
      const one = await FilesSession.open(job.repo, [d], events);
      try { await searchIn(one, [i]); } finally { bytesRead += one.bytesRead(); await one.close(); }
    });
  }
  if (results.every((r) => r === undefined)) {
    throw new NotFoundError(`set ${job.set} disk ${diskName}: ${p} does not exist in generation ${manifests.map((m) => m.generation).join(', ')}`);
  }
  const paths = new Set<string>();
  for (const r of results) for (const k of r?.keys() ?? []) paths.add(k);
  const matches: FindMatch[] = [...paths].sort().map((guest) => {
    const versions = results.map((r) => r?.get(guest)).filter((v): v is FindVersion => v !== undefined);
    const first = versions[0]!;
    const changed = disks.length > 1 && (versions.length < disks.length
      || versions.some((v) => v.type !== first.type || v.size !== first.size || v.sha256 !== first.sha256));
    return { path: guest, versions, changed };
  });
  return { set: newest.set, disk: diskName, fs: fsName, generations: manifests.map((m) => m.generation), matches, bytesRead };
}
