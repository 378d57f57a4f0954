/**
 * File-level access to generations: each wanted disk of each generation is served as an NBD
 * export on a private Unix socket (serveGeneration: shared lock, read-only) and attached to
 * one libguestfs appliance. What the appliance reads is what the exports read from the
 * repository; bytesRead sums it.
 */
import path from 'node:path';
import { UnsupportedFormatError, UsageError } from '../errors.js';
import { Guestfish, GuestfishError, type GuestfishDrive, quote } from '../files/guestfish.js';
import { type GuestFilesystem, listFilesystems } from '../files/filesystems.js';
import { describeDiskName, diskNames } from '../providers/disk-names.js';
import type { DiskRecord, GenerationManifest } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import { findDisk } from './resolve.js';
import { type ServingGeneration, serveGeneration } from './serve-generation.js';

export interface FilesEvents {
  readonly onWarning?: (message: string) => void;
  /** While the appliance starts: called every second with the time spent so far. */
  readonly onLaunching?: (elapsedMs: number) => void;
}

/** The disk of a generation the user named, or its only disk; several and none named is a usage error listing them. */
export function pickDisk(m: GenerationManifest, disk: string | undefined): DiskRecord {
  if (disk !== undefined) return findDisk(m, disk);
  if (m.disks.length === 1) return m.disks[0]!;
  throw new UsageError(`--disk: set ${m.set} generation ${m.generation} has several disks, give one of: ${diskNames(m).map(describeDiskName).join(', ')}`);
}

/** A path in the guest's filesystem: absolute, normalised (`..` cannot climb above its root). */
export function guestPath(p: string): string {
  if (!p.startsWith('/')) throw new UsageError(`path ${JSON.stringify(p)} must be absolute (start with /): it names a file in the backed-up filesystem`);
  const n = path.posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

export interface AttachedDisk {
  readonly manifest: GenerationManifest;
  readonly disk: DiskRecord;
  readonly served: ServingGeneration;
  readonly drive: GuestfishDrive;
}

export class FilesSession {
  private constructor(readonly fish: Guestfish, readonly attached: readonly AttachedDisk[]) {}

  /** Serves the disks (one per entry) and launches an appliance with them, in that order. */
  static async open(repo: Repository, disks: readonly { manifest: GenerationManifest; disk: DiskRecord }[], events: FilesEvents): Promise<FilesSession> {
    const attached: AttachedDisk[] = [];
    try {
      for (const d of disks) {
        const served = await serveGeneration({
          repo, set: d.manifest.set, generation: String(d.manifest.generation), disk: d.disk.name, writable: false,
          ...(events.onWarning ? { onWarning: events.onWarning } : {}),
        });
        const address = served.address;
        if (address.transport !== 'unix') throw new Error('serveGeneration listened on TCP for a private export');
        attached.push({ ...d, served, drive: { socket: address.path, exportName: served.export.disk } });
      }
      const fish = await Guestfish.launch(attached.map((a) => a.drive), events.onLaunching);
      return new FilesSession(fish, attached);
    } catch (err) {
      for (const a of attached) await a.served.stop().catch(() => {});
      throw err;
    }
  }

  /** Plain bytes read from the repository by the exports so far. */
  bytesRead(): number {
    return this.attached.reduce((n, a) => n + a.served.bytesRead(), 0);
  }

  /** Quits the appliance and stops the exports. */
  async close(): Promise<void> {
    try { await this.fish.close(); } finally { await this.stopServing(); }
  }

  /** Kills the appliance (an interrupted request) and stops the exports. */
  async abort(): Promise<void> {
    try { await this.fish.abort(); } finally { await this.stopServing(); }
  }

  private async stopServing(): Promise<void> {
    for (const a of this.attached) await a.served.stop().catch(() => {});
  }
}

function fsList(fss: readonly GuestFilesystem[]): string {
  return fss.map((f) => `${f.name} (${f.type})`).join(', ') || 'none';
}

/** The filesystem of a drive the user named with --fs, or its only one. */
export function pickFilesystem(all: readonly GuestFilesystem[], drive: number, diskName: string, fs: string | undefined): GuestFilesystem {
  const mine = all.filter((f) => f.drive === drive);
  if (fs !== undefined) {
    const wanted = fs.replace(/^\/dev\//, '');
    const hit = mine.find((f) => f.name === wanted);
    if (!hit) throw new UsageError(`--fs: disk ${diskName} has no filesystem ${fs}; it has: ${fsList(mine)}`);
    return hit;
  }
  if (mine.length === 1) return mine[0]!;
  if (mine.length === 0) throw new UnsupportedFormatError(`disk ${diskName} holds no filesystem libguestfs recognises`);
  throw new UsageError(`--fs: disk ${diskName} has several filesystems, give one of: ${fsList(mine)}`);
}

/**
 * Mounts a filesystem read-only at `at` of the appliance ("/" or a mount point made for it).
 * XFS gets `nouuid`: a clone of the same filesystem (another generation) may be mounted too.
 * What it cannot mount (an encrypted volume, an unknown type) is UnsupportedFormatError.
 */
export async function mountFilesystem(fish: Guestfish, f: GuestFilesystem, diskName: string, at: string): Promise<void> {
  const what = `disk ${diskName} filesystem ${f.name} (${f.type})`;
  if (/crypto|luks|swap|bitlocker/i.test(f.type)) throw new UnsupportedFormatError(`${what}: libguestfs cannot read it as files (an encrypted volume or swap)`);
  if (at !== '/') await fish.call(`mkmountpoint ${quote(at)}`);
  try {
    await fish.call(`mount-options ${quote(f.type === 'xfs' ? 'ro,nouuid' : 'ro')} ${quote(f.device)} ${quote(at)}`);
  } catch (err) {
    if (err instanceof GuestfishError) throw new UnsupportedFormatError(`${what}: libguestfs cannot mount it read-only: ${err.reason}`);
    throw err;
  }
}

/** Opens one disk of one generation, finds its filesystems, mounts the chosen one at /. */
export async function openFilesystem(repo: Repository, manifest: GenerationManifest, diskSpec: string | undefined, fs: string | undefined,
  events: FilesEvents): Promise<{ session: FilesSession; filesystem: GuestFilesystem; disk: DiskRecord }> {
  const disk = pickDisk(manifest, diskSpec);
  const session = await FilesSession.open(repo, [{ manifest, disk }], events);
  try {
    const filesystem = pickFilesystem(await listFilesystems(session.fish), 0, disk.name, fs);
    await mountFilesystem(session.fish, filesystem, disk.name, '/');
    return { session, filesystem, disk };
  } catch (err) {
    await session.close().catch(() => {});
    throw err;
  }
}
