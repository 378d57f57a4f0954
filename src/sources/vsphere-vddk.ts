/**
 * The vddk transport: runs `nbdkit vddk` for one disk on a private Unix socket — a
 * snapshot's disk read-only for backup, a VM's disk writable for restore — and talks
 * NBD to it. The password reaches nbdkit as `password=+FILE` (a 0600 file in a private
 * directory, removed once nbdkit has started), never as an argument.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, IoError } from '../errors.js';
import { NbdSource } from './nbd.js';
import { canConnect } from './unix-socket.js';
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
  /** Seconds to wait for nbdkit to serve the disk (VDDK connects to the host first). */
  readonly startTimeoutMs?: number;
}

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

async function startNbdkit(args: string[], socket: string, what: string, timeoutMs: number): Promise<ChildProcess> {
  const child = spawn('nbdkit', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4000); });
  let exited: string | undefined;
  let spawnError: NodeJS.ErrnoException | undefined;
  child.once('error', (err) => { spawnError = err; });
  child.once('exit', (code, signal) => { exited = signal ?? `exit code ${code}`; });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (spawnError) {
      throw spawnError.code === 'ENOENT'
        ? new InputError('nbdkit is not installed, which the vddk transport needs: apt install nbdkit (plus its vddk plugin), or use --transport https')
        : new IoError(`starting nbdkit for ${what} failed: ${spawnError.message}`, { cause: spawnError });
    }
    if (exited !== undefined) {
      const missing = missingPiece(stderr);
      if (missing) throw new InputError(missing);
      const last = stderr.trim().split('\n').filter(Boolean).pop() ?? exited;
      throw new IoError(`nbdkit vddk for ${what} stopped (${exited}): ${last}`);
    }
    if (await canConnect(socket)) return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new IoError(`nbdkit vddk for ${what} did not start serving within ${Math.round(timeoutMs / 1000)} s`);
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
  let child: ChildProcess | undefined;
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
    child = await startNbdkit(args, socket, disk.what, opts.startTimeoutMs ?? 120_000);
    await rm(passwordFile, { force: true });
    const proc = child;
    return {
      uri: `nbd+unix:///?socket=${encodeURIComponent(socket)}`,
      stop: async () => {
        proc.kill('SIGTERM');
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child?.kill('SIGKILL');
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
