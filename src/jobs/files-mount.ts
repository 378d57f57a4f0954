/**
 * `files mount`: one filesystem of a generation's disk mounted read-only (FUSE, guestmount)
 * until the caller unmounts it. Without --fs the disk's filesystems are listed first (an
 * appliance of its own); with --fs the name maps straight to the device.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { listFilesystems } from '../files/filesystems.js';
import { guestMount, isMounted } from '../files/guestmount.js';
import type { FilesTarget } from './files-list.js';
import { type FilesEvents, FilesSession, pickDisk, pickFilesystem } from './files-session.js';
import { resolveGeneration } from './resolve.js';
import { serveGeneration } from './serve-generation.js';

export interface MountJob extends FilesTarget {
  readonly fs?: string;
  readonly dir: string;
  readonly signal?: AbortSignal;
}

export interface MountedGeneration {
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly fs: string;
  readonly dir: string;
  /** Settles when the mount ends from outside (guestunmount by hand) or guestmount fails. */
  readonly exited: Promise<void>;
  /** Unmounts, stops the export; resolves to the bytes read from the repository in all. */
  unmount(): Promise<number>;
}

/** The appliance's device for a filesystem name of a lone drive (sda1 → /dev/sda1, vg0/root → /dev/vg0/root). */
function deviceOf(name: string): string {
  if (!/^(sda\d*|[^/\s]+\/[^/\s]+)$/.test(name)) throw new UsageError(`--fs ${JSON.stringify(name)}: a filesystem is named like sda1 (a partition), sda (a whole disk) or VG/LV (LVM)`);
  return `/dev/${name}`;
}

export async function mountGeneration(job: MountJob, events: FilesEvents): Promise<MountedGeneration> {
  const dir = path.resolve(job.dir);
  const s = await fs.stat(dir).catch(() => undefined);
  if (!s?.isDirectory()) throw new UsageError(`files mount: ${dir} is not a directory (create it first)`);
  if (await isMounted(dir)) throw new UsageError(`files mount: ${dir} is already a mount point`);
  const manifest = await resolveGeneration(job.repo, job.set, job.generation);
  const disk = pickDisk(manifest, job.disk);
  let fsName = job.fs;
  let bytesBefore = 0;
  if (fsName === undefined) {
    const session = await FilesSession.open(job.repo, [{ manifest, disk }], events);
    try {
      fsName = pickFilesystem(await listFilesystems(session.fish), 0, disk.name, undefined).name;
    } finally {
      bytesBefore = session.bytesRead();
      await session.close();
    }
  }
  const device = deviceOf(fsName);
  const served = await serveGeneration({
    repo: job.repo, set: manifest.set, generation: String(manifest.generation), disk: disk.name, writable: false,
    ...(events.onWarning ? { onWarning: events.onWarning } : {}),
  });
  try {
    if (served.address.transport !== 'unix') throw new Error('serveGeneration listened on TCP for a private export');
    const m = await guestMount({ socket: served.address.path, exportName: served.export.disk }, device, dir, job.signal);
    let done: Promise<number> | undefined;
    return {
      set: manifest.set, generation: manifest.generation, disk: disk.name, fs: fsName, dir, exited: m.exited,
      unmount: () => (done ??= (async () => {
        try { await m.unmount(); } finally { await served.stop(); }
        return bytesBefore + served.bytesRead();
      })()),
    };
  } catch (err) {
    await served.stop().catch(() => {});
    throw err;
  }
}
