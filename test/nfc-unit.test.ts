/** Unit tests of the nfc transport's pure parts: descriptor extent lines, streamOptimized VMDKs, lease device keys and leftover leases. */
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { deviceSlot } from '../src/vsphere/nfc-lease.js';
import { leaseField, leasesOf, withoutHeartbeat } from '../src/vsphere/snapshot-owner.js';
import { type StreamGrain, streamGrains } from '../src/vsphere/vmdk-stream.js';
import { objectScheme, parseExtents } from '../src/vsphere/vmdk-descriptor.js';

const SECTOR = 512;
const GRAIN = 64 * 1024;

/** A streamOptimized VMDK of `capacity` bytes holding `grains` (offset → bytes), cut into `chunk`-byte pieces. */
function stream(capacity: number, grains: [number, Buffer][], opts: { chunk?: number; eos?: boolean; metadata?: boolean } = {}): Buffer[] {
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(0x564d444b, 0);
  h.writeUInt32LE(3, 4);
  h.writeUInt32LE(1 | (1 << 16) | (1 << 17), 8);
  h.writeBigUInt64LE(BigInt(capacity / SECTOR), 12);
  h.writeBigUInt64LE(BigInt(GRAIN / SECTOR), 20);
  h.writeBigUInt64LE(1n, 28);
  h.writeBigUInt64LE(1n, 36);
  h.writeBigUInt64LE(2n, 64); // header + one descriptor sector
  h.writeUInt16LE(1, 77);
  const parts = [h, Buffer.alloc(SECTOR, 0x20)];
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((SECTOR - (b.length % SECTOR)) % SECTOR)]);
  for (const [offset, data] of grains) {
    const z = deflateSync(data);
    const m = Buffer.alloc(12);
    m.writeBigUInt64LE(BigInt(offset / SECTOR), 0);
    m.writeUInt32LE(z.length, 8);
    parts.push(pad(Buffer.concat([m, z])));
  }
  if (opts.metadata) { // a grain table marker (type 1) and its one sector, to be skipped
    const m = Buffer.alloc(SECTOR);
    m.writeBigUInt64LE(1n, 0);
    m.writeUInt32LE(1, 12);
    parts.push(m, Buffer.alloc(SECTOR, 0xee));
  }
  if (opts.eos !== false) parts.push(Buffer.alloc(SECTOR));
  const all = Buffer.concat(parts);
  const chunk = opts.chunk ?? all.length;
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += chunk) out.push(all.subarray(i, i + chunk));
  return out;
}

async function collect(chunks: Buffer[], capacity: number): Promise<StreamGrain[]> {
  const got: StreamGrain[] = [];
  for await (const g of streamGrains((async function* () { yield* chunks; })(), capacity, 'disk 2000')) got.push(g);
  return got;
}

describe('VMDK descriptor extents', () => {
  it('reads VMFS, vSAN and split descriptors, and tells objects from files', () => {
    assert.deepEqual(parseExtents('# Extent description\nRW 16384 VMFS "web01-flat.vmdk"\n\n#DDB\n'),
      [{ access: 'RW', sectors: 16384, type: 'VMFS', file: 'web01-flat.vmdk', offset: 0 }]);
    const vsan = parseExtents('createType="vmfs"\r\nRW 83886080 VMFS "vsan://52c5a3f1-2b1e-8a40-1c2d-3e4f5a6b7c8d"\r\n');
    assert.equal(vsan.length, 1);
    assert.equal(objectScheme(vsan[0]!.file), 'vsan');
    assert.equal(objectScheme('web01-flat.vmdk'), undefined);
    assert.deepEqual(parseExtents('RW 4192256 SPARSE "a-s001.vmdk"\nRW 4192256 SPARSE "a-s002.vmdk" 0\nddb.uuid = "x"\n').map((e) => e.file), ['a-s001.vmdk', 'a-s002.vmdk']);
    assert.deepEqual(parseExtents('not a descriptor'), []);
  });
});

describe('streamOptimized VMDK', () => {
  const capacity = 4 * GRAIN;
  const a = Buffer.alloc(GRAIN, 0xa1);
  const b = Buffer.alloc(GRAIN, 0xb2);

  it('gives the grains with their byte offsets, whatever the chunking, skipping metadata', async () => {
    for (const chunk of [7, 512, 100_000]) {
      const got = await collect(stream(capacity, [[GRAIN, a], [3 * GRAIN, b]], { chunk, metadata: true }), capacity);
      assert.deepEqual(got.map((g) => g.offset), [GRAIN, 3 * GRAIN], `chunks of ${chunk}`);
      assert.ok(got[0]!.data.equals(a) && got[1]!.data.equals(b));
    }
  });

  it('fails on a stream cut short, a disk of another size, a grain outside the disk, and a flat file', async () => {
    await assert.rejects(collect(stream(capacity, [[0, a]], { eos: false }), capacity), /ended without its end-of-stream marker/);
    const cut = Buffer.concat(stream(capacity, [[0, a]]));
    await assert.rejects(collect([cut.subarray(0, cut.length - SECTOR - 40)], capacity), /ended/);
    await assert.rejects(collect(stream(capacity, [[0, a]]), 2 * capacity), /the stream's disk has 262144 bytes, the VM's 524288/);
    await assert.rejects(collect(stream(capacity, [[4 * GRAIN, a]]), capacity), /lies outside the disk/);
    await assert.rejects(collect([Buffer.alloc(4096)], capacity), /not a VMDK stream/);
  });
});

describe('export lease bookkeeping', () => {
  it('matches device keys to controller and unit', () => {
    assert.deepEqual(deviceSlot('/vm-42/ParaVirtualSCSIController0:1'), { controllerType: 'ParaVirtualSCSIController', bus: 0, unit: 1 });
    assert.deepEqual(deviceSlot('/vm-42/VirtualLsiLogicController1:15'), { controllerType: 'VirtualLsiLogicController', bus: 1, unit: 15 });
    assert.equal(deviceSlot('/vm-42/nvram'), undefined);
  });

  it('records leases in a snapshot description beside the heartbeat, and reads them back', () => {
    const d = `vmbkp backup; host=h pid=1 started=2026-01-01T00:00:00.000Z ${leaseField('session[52]4')} alive=2026-01-01T00:05:00.000Z`;
    assert.deepEqual(leasesOf(d), ['session[52]4']);
    assert.deepEqual(leasesOf(withoutHeartbeat(d)), ['session[52]4']);
    assert.deepEqual(leasesOf('vmbkp backup; host=h pid=1'), []);
  });
});
