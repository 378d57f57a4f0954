/**
 * The vddk transport: runs `nbdkit vddk` for one disk on a private Unix socket — a
 * snapshot's disk read-only for backup, a VM's disk writable for restore — and talks
 * NBD to it. The password reaches nbdkit as `password=+FILE` (a 0600 file in a private
 * directory, removed once nbdkit has started), never as an argument.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, IoError } from '../errors.js';
import { HelperExitedError, HelperProcess } from './helper-process.js';
import { NbdSource } from './nbd.js';
import { type DiskReader, type SnapshotDisk, VsphereDiskSource, diskLabel } from './vsphere.js';

export interface VddkOptions {
  /** vCenter or ESXi host name, as VDDK connects to it. */
  readonly server: string;
  readonly user: string;
  readonly password: string;
  /** SHA-1 thumbprint of the server's certificate ("AA:BB:…"), which VDDK checks. */
  readonly thumbprint: string;
  /** Where VMware's VDDK is unpacked (nbdkit's libdir=); nbdkit's default when absent. */
  readonly libdir?: string;
  /** VDDK transport modes in order of preference, e.g. "hotadd:nbdssl:nbd". */
  readonly transports?: string;
  /** How long nbdkit may take to serve the disk (default VDDK_READY_TIMEOUT_MS). */
  readonly startTimeoutMs?: number;
}

/** VDDK logs in to the host and opens the disk before nbdkit serves: longer than a local helper. */
export const VDDK_READY_TIMEOUT_MS = 120_000;

/** Turns nbdkit's complaint about a missing piece into what to install. */
function missingPiece(stderr: string): string | undefined {
  if (/cannot open plugin ['"]?vddk/i.test(stderr)) {
    return "nbdkit's vddk plugin is not installed (Debian's nbdkit does not ship it): install nbdkit with its vddk plugin (e.g. nbdkit-vddk-plugin), or use --transport https";
  }
  if (/libvixDiskLib/i.test(stderr)) {
    return "VMware's VDDK library was not found: unpack VDDK and give its directory with --vddk-libdir, or use --transport https";
  }
  return undefined;
}

async function startNbdkit(args: string[], socket: string, what: string, timeoutMs: number): Promise<HelperProcess> {
  try {
    return await HelperProcess.start({
      command: 'nbdkit', args, socket, what: `nbdkit vddk for ${what}`, readyTimeoutMs: timeoutMs,
      notInstalled: 'nbdkit is not installed, which the vddk transport needs: apt install nbdkit (plus its vddk plugin), or use --transport https',
    });
  } catch (err) {
    const missing = err instanceof HelperExitedError ? missingPiece(err.stderr) : undefined;
    if (missing) throw new InputError(missing, { cause: err });
    throw err;
  }
}

/** What nbdkit's vddk plugin serves: one disk file of a VM, or of one of its snapshots. */
export interface VddkDisk {
  /** The VM's moref ("vm-42"). */
  readonly vm: string;
  /** The disk's descriptor, "[ds1] web01/web01.vmdk". */
  readonly file: string;
  /** A snapshot's moref: its frozen view of the disk (backup). */
  readonly snapshot?: string;
  /** Writable (restore) or read-only (backup). */
  readonly writable: boolean;
  /** Names the disk in messages ("disk 2000 of VM web01"). */
  readonly what: string;
}

/** A running `nbdkit vddk` on a private Unix socket. */
export interface VddkServer {
  readonly uri: string;
  stop(): Promise<void>;
}

/**
 * Starts `nbdkit vddk` for one disk on a private Unix socket. The password reaches it as
 * password=+FILE (0600, in a 0700 directory), removed once nbdkit serves.
 */
export async function serveVddkDisk(disk: VddkDisk, opts: VddkOptions): Promise<VddkServer> {
  const dir = await mkdtemp(join(tmpdir(), 'vmbkp-vddk-'));
  const passwordFile = join(dir, 'password');
  const socket = join(dir, 'nbd.sock');
  try {
    await writeFile(passwordFile, opts.password, { mode: 0o600 });
    const args = [
      '--foreground', ...(disk.writable ? [] : ['--readonly']), '--exit-with-parent', '--unix', socket,
      'vddk',
      ...(opts.libdir ? [`libdir=${opts.libdir}`] : []),
      `server=${opts.server}`,
      `user=${opts.user}`,
      `password=+${passwordFile}`,
      `thumbprint=${opts.thumbprint}`,
      `vm=moref=${disk.vm}`,
      ...(disk.snapshot ? [`snapshot=${disk.snapshot}`] : []),
      ...(opts.transports ? [`transports=${opts.transports}`] : []),
      `file=${disk.file}`,
    ];
    // startNbdkit leaves nothing running when it fails.
    const helper = await startNbdkit(args, socket, disk.what, opts.startTimeoutMs ?? VDDK_READY_TIMEOUT_MS);
    await rm(passwordFile, { force: true });
    return {
      uri: `nbd+unix:///?socket=${encodeURIComponent(socket)}`,
      // Waits for nbdkit to exit: a restore destroys the VM only once VDDK let go of its disk.
      stop: async () => {
        try {
          await helper.stop();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function openVddkDisk(d: SnapshotDisk, opts: VddkOptions): Promise<VsphereDiskSource> {
  const what = diskLabel(d);
  const server = await serveVddkDisk({ vm: d.vm.ref.value, file: d.disk.fileName, snapshot: d.snapshot.value, writable: false, what }, opts);
  try {
    const nbd = await NbdSource.open(server.uri);
    if (nbd.size !== d.disk.capacity) {
      await nbd.close();
      throw new IoError(`nbdkit vddk serves ${nbd.size} bytes for ${what}, whose capacity is ${d.disk.capacity}`);
    }
    const reader: DiskReader = {
      description: `vddk:${d.disk.fileName}@${d.snapshot.value}`,
      read: async (offset, length, into) => { await nbd.read(offset, length, into); },
      allocated: (offset, length) => nbd.allocated(offset, length),
      close: async () => {
        await nbd.close().catch(() => {});
        await server.stop();
      },
    };
    return new VsphereDiskSource(d, reader);
  } catch (err) {
    await server.stop();
    throw err;
  }
}
