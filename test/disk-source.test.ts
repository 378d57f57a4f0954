/**
 * The DiskSource conformance suite against the sources that need no vSphere: a file, and NBD
 * sources on real servers (nbdkit memory and file, qemu-nbd on raw and qcow2 images).
 * The vSphere snapshot disks run it in disk-source-vsphere.test.ts.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NbdClient } from '../src/nbd/client.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { FileSource } from '../src/sources/file.js';
import { NbdSource } from '../src/sources/nbd.js';
import { diskSourceConformance } from './disk-source-conformance.js';
import { startNbdkit, tempDir, waitForSocket } from './helpers.js';
import { allZero } from './known-content.js';

const execFileP = promisify(execFile);

/** Writes `bytes` to a new file, leaving 64 KiB blocks of zeros as holes. */
async function writeSparse(file: string, bytes: Buffer): Promise<void> {
  const fh = await fs.open(file, 'wx');
  try {
    await fh.truncate(bytes.length);
    const block = 64 * 1024;
    for (let o = 0; o < bytes.length; o += block) {
      const n = Math.min(block, bytes.length - o);
      if (!allZero(bytes, o, n)) await fh.write(bytes, o, n, o);
    }
  } finally {
    await fh.close();
  }
}

async function startQemuNbd(dir: string, format: 'raw' | 'qcow2', image: string): Promise<{ uri: string; stop: () => Promise<void> }> {
  const socket = path.join(dir, 'qemu.sock');
  const child: ChildProcess = spawn('qemu-nbd', ['-k', socket, '-f', format, '--persistent', '--read-only', image], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (!(await waitForSocket(socket, () => child.exitCode !== null))) throw new Error(`qemu-nbd on ${image} did not start`);
  return {
    uri: `nbd+unix:///?socket=${encodeURIComponent(socket)}`,
    stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } },
  };
}

diskSourceConformance('file', { reportsHoles: false, changes: 'unknown' }, async (content) => {
  const { dir, cleanup } = await tempDir();
  const file = path.join(dir, 'disk.img');
  await writeSparse(file, content);
  return { source: await FileSource.open(file), cleanup };
});

diskSourceConformance('nbd: nbdkit memory, written over NBD', { reportsHoles: true, changes: 'unknown' }, async (content) => {
  const { dir, cleanup } = await tempDir();
  const server = await startNbdkit(dir, ['memory', String(content.length)]);
  const writer = await NbdClient.connect(parseNbdUri(server.uri));
  const block = 64 * 1024;
  for (let o = 0; o < content.length; o += block) {
    const n = Math.min(block, content.length - o);
    if (!allZero(content, o, n)) await writer.write(o, content.subarray(o, o + n));
  }
  await writer.close();
  return { source: await NbdSource.open(server.uri), cleanup: async () => { await server.stop(); await cleanup(); } };
});

diskSourceConformance('nbd: nbdkit file on a sparse file', { reportsHoles: true, changes: 'unknown' }, async (content) => {
  const { dir, cleanup } = await tempDir();
  const file = path.join(dir, 'disk.img');
  await writeSparse(file, content);
  const server = await startNbdkit(dir, ['--readonly', 'file', file]);
  return { source: await NbdSource.open(server.uri), cleanup: async () => { await server.stop(); await cleanup(); } };
});

diskSourceConformance('nbd: qemu-nbd on a raw file', { reportsHoles: true, changes: 'unknown' }, async (content) => {
  const { dir, cleanup } = await tempDir();
  const file = path.join(dir, 'disk.img');
  await writeSparse(file, content);
  const server = await startQemuNbd(dir, 'raw', file);
  return { source: await NbdSource.open(server.uri), cleanup: async () => { await server.stop(); await cleanup(); } };
});

diskSourceConformance('nbd: qemu-nbd on a qcow2 image', { reportsHoles: true, changes: 'unknown' }, async (content) => {
  const { dir, cleanup } = await tempDir();
  const raw = path.join(dir, 'disk.img');
  const image = path.join(dir, 'disk.qcow2');
  await writeSparse(raw, content);
  await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, image]);
  const server = await startQemuNbd(dir, 'qcow2', image);
  return { source: await NbdSource.open(server.uri), cleanup: async () => { await server.stop(); await cleanup(); } };
});
