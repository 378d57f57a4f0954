/**
 * The streamOptimized VMDK writer (src/vsphere/vmdk-stream-writer.ts) against a real
 * reader of the format: qemu-img must take what it writes as a VMDK of the right size
 * and convert it back to the same bytes; the nfc transport's own stream reader too.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { STREAM_GRAIN, StreamVmdkWriter } from '../src/vsphere/vmdk-stream-writer.js';
import { streamGrains } from '../src/vsphere/vmdk-stream.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;

/** Bytes that deflate poorly, so grains are not trivially small. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

async function written(capacity: number, writes: [number, Buffer][]): Promise<{ file: Buffer; disk: Buffer }> {
  const parts: Buffer[] = [];
  const w = new StreamVmdkWriter(capacity, async (c) => { parts.push(Buffer.from(c)); });
  const disk = Buffer.alloc(capacity);
  for (const [offset, data] of writes) {
    await w.write(offset, data);
    data.copy(disk, offset);
  }
  await w.finish();
  const file = Buffer.concat(parts);
  assert.equal(w.bytesOut, file.length);
  return { file, disk };
}

describe('streamOptimized VMDK writer', () => {
  it('writes a VMDK qemu-img reads back byte for byte: several grain tables, unaligned writes, a short last grain, zero grains left out', async () => {
    // 40 MiB + 32 KiB: two grain tables (32 MiB each), the last grain half a grain.
    const capacity = 40 * MiB + 32 * 1024;
    const writes: [number, Buffer][] = [
      [0, noise(STREAM_GRAIN, 1)],
      [STREAM_GRAIN + 1000, noise(3 * STREAM_GRAIN, 2)], // unaligned, across grain boundaries
      [8 * MiB, Buffer.alloc(STREAM_GRAIN)], // written zeros: no grain
      [33 * MiB + 512, noise(4096, 3)], // in the second grain table
      [capacity - 32 * 1024, noise(32 * 1024, 4)], // the short last grain
    ];
    const { file, disk } = await written(capacity, writes);
    const dir = await mkdtemp(path.join(tmpdir(), 'vmbkp-vmdk-'));
    try {
      const vmdk = path.join(dir, 'disk.vmdk');
      const raw = path.join(dir, 'disk.raw');
      await writeFile(vmdk, file);
      const info = JSON.parse((await execFileP('qemu-img', ['info', '--output=json', '-f', 'vmdk', vmdk])).stdout) as Record<string, unknown>;
      assert.equal(info['virtual-size'], capacity);
      assert.equal((info['format-specific'] as { data?: { 'create-type'?: string } } | undefined)?.data?.['create-type'], 'streamOptimized');
      await execFileP('qemu-img', ['check', '-f', 'vmdk', vmdk]);
      await execFileP('qemu-img', ['convert', '-q', '-f', 'vmdk', '-O', 'raw', vmdk, raw]);
      const back = await readFile(raw);
      assert.equal(back.length, capacity);
      assert.ok(back.equals(disk), 'qemu-img reads back what was written');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // The transport's streaming reader gets the same grains; the zero grain was never sent.
    const grains = [];
    for await (const g of streamGrains((async function* () { yield file; })(), capacity, 'test')) grains.push(g);
    assert.deepEqual(grains.map((g) => g.offset / STREAM_GRAIN), [0, 1, 2, 3, 4, (33 * MiB) / STREAM_GRAIN, Math.floor((capacity - 1) / STREAM_GRAIN)]);
    for (const g of grains) assert.ok(g.data.equals(disk.subarray(g.offset, g.offset + g.data.length)));
  });

  it('writes an empty disk as a valid VMDK of zeros, and refuses writes out of order', async () => {
    const { file } = await written(2 * MiB, []);
    const dir = await mkdtemp(path.join(tmpdir(), 'vmbkp-vmdk-'));
    try {
      await writeFile(path.join(dir, 'e.vmdk'), file);
      await execFileP('qemu-img', ['convert', '-q', '-f', 'vmdk', '-O', 'raw', path.join(dir, 'e.vmdk'), path.join(dir, 'e.raw')]);
      assert.ok((await readFile(path.join(dir, 'e.raw'))).equals(Buffer.alloc(2 * MiB)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const w = new StreamVmdkWriter(MiB, async () => {});
    await w.write(STREAM_GRAIN, Buffer.alloc(10, 1));
    await assert.rejects(w.write(0, Buffer.alloc(10, 1)), /disk order/);
  });
});
