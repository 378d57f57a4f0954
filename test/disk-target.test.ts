/**
 * The DiskTarget conformance suite against the targets that need no vSphere: a sparse file,
 * a qcow2 image through qemu-nbd, and an NBD export of a real nbdkit. The vSphere targets
 * run it in disk-target-vsphere.test.ts.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NbdClient } from '../src/nbd/client.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { FileTarget } from '../src/sources/file.js';
import { NbdTarget } from '../src/sources/nbd.js';
import { Qcow2Target } from '../src/sources/qcow2.js';
import { diskTargetConformance } from './disk-target-conformance.js';
import { startNbdkit, tempDir } from './helpers.js';

const execFileP = promisify(execFile);
const exists = (file: string) => () => fs.access(file).then(() => true, () => false);

diskTargetConformance('file', {}, async (size) => {
  const { dir, cleanup } = await tempDir();
  const file = path.join(dir, 'disk.img');
  return { target: await FileTarget.create(file, size, false), readBack: () => fs.readFile(file), exists: exists(file), cleanup };
});

diskTargetConformance('qcow2 through qemu-nbd', {}, async (size) => {
  const { dir, cleanup } = await tempDir();
  const image = path.join(dir, 'disk.qcow2');
  const readBack = async () => {
    const raw = path.join(dir, 'back.raw');
    await execFileP('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', image, raw]);
    const bytes = await fs.readFile(raw);
    await fs.rm(raw);
    return bytes;
  };
  return { target: await Qcow2Target.create(image, size, false), readBack, exists: exists(image), cleanup };
});

diskTargetConformance('nbd: an nbdkit memory export holding other bytes', {}, async (size) => {
  const { dir, cleanup } = await tempDir();
  const server = await startNbdkit(dir, ['memory', String(size)]);
  // The export holds bytes of its own, so that only zero() makes zeros (the target is not zeroed).
  const filler = await NbdClient.connect(parseNbdUri(server.uri));
  for (let o = 0; o < size; o += 1024 * 1024) await filler.write(o, Buffer.alloc(Math.min(1024 * 1024, size - o), 0xa5));
  await filler.close();
  const readBack = async () => {
    const c = await NbdClient.connect(parseNbdUri(server.uri));
    try { return await c.read(0, size); } finally { await c.close(); }
  };
  return { target: await NbdTarget.open(server.uri, size), readBack, cleanup: async () => { await server.stop(); await cleanup(); } };
});
