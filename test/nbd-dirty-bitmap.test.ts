/**
 * incr from a QEMU dirty bitmap: qemu-nbd serves a qcow2 with a persistent bitmap, the
 * "guest" writes are played with qemu-io, and the incr reads only the dirty extents.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { run, sha256File, tempDir, vmbkp, vmbkpJson, waitForSocket } from './helpers.js';

interface Gen { disks: { mode: string; bytesRead: number }[] }
const CHUNK = 256 * 1024;

async function ok(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** qemu-nbd on a Unix socket, exposing bitmap `bitmap` when given. */
async function qemuNbd(dir: string, image: string, bitmap?: string): Promise<{ uri: string; stop: () => Promise<void> }> {
  const socket = path.join(dir, `q${Date.now()}.sock`);
  const child: ChildProcess = spawn('qemu-nbd', ['-k', socket, '-f', 'qcow2', '--persistent', '--read-only', ...(bitmap ? ['-B', bitmap] : []), image], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  assert.ok(await waitForSocket(socket, () => child.exitCode !== null), 'qemu-nbd listens');
  return { uri: `nbd+unix:///?socket=${socket}`, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

let dir: string;
let cleanup: () => Promise<void>;
before(async () => { ({ dir, cleanup } = await tempDir()); });
after(() => cleanup());

it('incr with --changed-bitmap reads only the dirty extents and restores identical', async () => {
  const image = path.join(dir, 'vm.qcow2');
  const repo = path.join(dir, 'repo');
  await ok('qemu-img', ['create', '-q', '-f', 'qcow2', image, '64M']);
  await ok('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 4M', '-c', 'write -P 0x22 20M 2M', image]);
  assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);

  let srv = await qemuNbd(dir, image);
  const full = await vmbkpJson<Gen>(['backup', '--repo', repo, '--set', 'vm', `sda=${srv.uri}`]);
  await srv.stop();
  assert.equal(full.disks[0]!.mode, 'full');
  assert.equal(full.disks[0]!.bytesRead, 6 * 1024 * 1024, 'base:allocation: only the 6 MiB written are read');

  // From here on the bitmap records what the guest writes.
  await ok('qemu-img', ['bitmap', '--add', image, 'b0']);
  await ok('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 8M 1M', '-c', 'write -P 0x44 40M 64k', '-c', 'write -P 0x55 1M 4k', image]);

  srv = await qemuNbd(dir, image, 'b0');
  try {
    const incr = await vmbkpJson<Gen>(['backup', '--repo', repo, '--set', 'vm', '--mode', 'incr', '--changed-bitmap', 'sda=b0', `sda=${srv.uri}`]);
    assert.equal(incr.disks[0]!.mode, 'incr');
    // Dirty: 8M+1M (4 chunks), 40M+64k (1 chunk), 1M+4k (1 chunk); the bitmap's own granularity is 64 KiB.
    assert.equal(incr.disks[0]!.bytesRead, 6 * CHUNK);
    // A bitmap the server does not export is a clear error.
    const bad = await vmbkp(['backup', '--repo', repo, '--set', 'vm', '--mode', 'incr', '--changed-bitmap', 'sda=nope', `sda=${srv.uri}`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /does not export dirty bitmap nope/);
  } finally {
    await srv.stop();
  }

  const raw = path.join(dir, 'vm.raw');
  await ok('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, raw]);
  const out = path.join(dir, 'restored.img');
  assert.equal((await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `file:${out}`])).code, 0);
  assert.equal(await sha256File(out), await sha256File(raw));
});
