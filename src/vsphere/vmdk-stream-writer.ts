/**
 * Writes a streamOptimized VMDK (VMware "Virtual Disk Format 5.0", stream-optimized
 * compressed sparse extents), the format vSphere's import leases take disks in: a sparse
 * header (grain directory at the end), an embedded descriptor, then each 64 KiB grain
 * that holds data as a grain marker (LBA, compressed size) and its zlib-deflated bytes
 * padded to a sector, in increasing LBA order; after the grains, each grain table that
 * has an entry (behind a grain-table marker), the grain directory (behind its marker),
 * a footer (a copy of the header that says where the directory is) and the
 * end-of-stream marker. Readers that seek (qemu-img) use the footer; streaming readers
 * (vSphere) need only the markers. Grains of zeros are not written: they read as zeros.
 */
import { promisify } from 'node:util';
import { deflate } from 'node:zlib';
import { IoError } from '../errors.js';

const deflateAsync = promisify(deflate);
const SECTOR = 512;
const ZERO_GRAIN = Buffer.alloc(64 * 1024);
export const STREAM_GRAIN = 64 * 1024;
const GRAIN_SECTORS = STREAM_GRAIN / SECTOR;
const GT_ENTRIES = 512;
/** Grains deflated at once: libuv's default thread pool has 4 threads. */
const DEFLATE_AHEAD = 4;
const GT_COVERS = GT_ENTRIES * STREAM_GRAIN; // bytes of disk one grain table maps
const GD_AT_END = 0xffffffffffffffffn;
const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

/** Where the writer's bytes go, in order. */
export type StreamSink = (chunk: Buffer) => Promise<void>;

function le32(entries: Uint32Array): Buffer {
  const b = Buffer.alloc(entries.length * 4);
  entries.forEach((v, i) => b.writeUInt32LE(v, i * 4));
  return b;
}

function padded(b: Buffer): Buffer {
  const r = b.length % SECTOR;
  return r === 0 ? b : Buffer.concat([b, Buffer.alloc(SECTOR - r)]);
}

function header(capacity: number, descSectors: number, gdOffset: bigint): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(0x564d444b, 0); // "KDMV"
  h.writeUInt32LE(3, 4); // version 3: streamOptimized
  h.writeUInt32LE(1 | (1 << 16) | (1 << 17), 8); // newline test valid, compressed grains, markers
  h.writeBigUInt64LE(BigInt(Math.ceil(capacity / SECTOR)), 12);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 20);
  h.writeBigUInt64LE(1n, 28); // descriptor right after the header
  h.writeBigUInt64LE(BigInt(descSectors), 36);
  h.writeUInt32LE(GT_ENTRIES, 44);
  h.writeBigUInt64LE(0n, 48); // no redundant directory
  h.writeBigUInt64LE(gdOffset, 56);
  h.writeBigUInt64LE(BigInt(1 + descSectors), 64); // overhead: the grains start here
  h.write('\n \r\n', 73, 'latin1'); // the newline-corruption test characters
  h.writeUInt16LE(1, 77); // deflate
  return h;
}

function metadataMarker(sectors: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(sectors), 0);
  m.writeUInt32LE(0, 8);
  m.writeUInt32LE(type, 12);
  return m;
}

function descriptor(capacity: number, adapterType: string): Buffer {
  const sectors = Math.ceil(capacity / SECTOR);
  const cid = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  return padded(Buffer.from(`# Disk DescriptorFile\nversion=1\nCID=${cid}\nparentCID=ffffffff\ncreateType="streamOptimized"\n\n`
    + `# Extent description\nRW ${sectors} SPARSE "disk.vmdk"\n\n# The Disk Data Base\n#DDB\n\n`
    + `ddb.adapterType = "${adapterType}"\nddb.virtualHWVersion = "13"\n`, 'ascii'));
}

/**
 * A streamOptimized VMDK of a `capacity`-byte disk, fed in increasing offset order
 * (ranges skipped read as zeros), its bytes handed to `sink` as they are made.
 */
export class StreamVmdkWriter {
  private sectorsOut = 0;
  private readonly gts = new Map<number, Uint32Array>(); // grain table index -> grain entries (sector offsets)
  private grainIndex = -1; // the grain being filled
  private grain: Buffer = Buffer.alloc(STREAM_GRAIN);
  private grainDirty = false;
  private readonly deflating: { g: number; z: Promise<Buffer> }[] = [];
  private pos = 0;
  private started = false;
  private descSectors = 0;
  private finished = false;
  bytesOut = 0;

  constructor(readonly capacity: number, private readonly sink: StreamSink, private readonly adapterType = 'lsilogic') {}

  private async out(b: Buffer): Promise<void> {
    await this.sink(b);
    this.sectorsOut += b.length / SECTOR;
    this.bytesOut += b.length;
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const desc = descriptor(this.capacity, this.adapterType);
    this.descSectors = desc.length / SECTOR;
    await this.out(Buffer.concat([header(this.capacity, desc.length / SECTOR, GD_AT_END), desc]));
  }

  /**
   * Queues the grain being filled for compression (unless it is all zeros). Up to
   * DEFLATE_AHEAD grains are deflated at once on libuv's threads; they are written in order.
   */
  private async flushGrain(): Promise<void> {
    const g = this.grainIndex;
    if (g < 0 || !this.grainDirty) return;
    const len = Math.min(STREAM_GRAIN, this.capacity - g * STREAM_GRAIN);
    const data = this.grain.subarray(0, len);
    this.grainDirty = false;
    if (data.equals(ZERO_GRAIN.subarray(0, len))) return;
    const z = deflateAsync(Buffer.from(data), { level: 1 });
    z.catch(() => {}); // awaited in order by emitGrain; this keeps an early failure from going unhandled
    this.deflating.push({ g, z });
    if (this.deflating.length >= DEFLATE_AHEAD) await this.emitGrain();
  }

  /** Writes the oldest deflated grain: its marker and data, noted in its grain table. */
  private async emitGrain(): Promise<void> {
    const next = this.deflating.shift();
    if (!next) return;
    const z = await next.z;
    const marker = Buffer.alloc(12);
    marker.writeBigUInt64LE(BigInt(next.g * GRAIN_SECTORS), 0);
    marker.writeUInt32LE(z.length, 8);
    const t = Math.floor(next.g / GT_ENTRIES);
    let gt = this.gts.get(t);
    if (!gt) this.gts.set(t, (gt = new Uint32Array(GT_ENTRIES)));
    gt[next.g % GT_ENTRIES] = this.sectorsOut;
    await this.out(padded(Buffer.concat([marker, z])));
  }

  private async moveTo(g: number): Promise<void> {
    if (g === this.grainIndex) return;
    await this.flushGrain();
    this.grainIndex = g;
    this.grain.fill(0);
  }

  /** Data at `offset`, which must not lie before what was already written. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.finished) throw new IoError('a streamOptimized VMDK was written to after its end');
    if (offset < this.pos) throw new IoError(`a streamOptimized VMDK takes data in disk order: offset ${offset} is before ${this.pos}`);
    if (offset + data.length > this.capacity) throw new IoError(`a write at ${offset} (${data.length} bytes) lies beyond the disk's ${this.capacity} bytes`);
    await this.start();
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const g = Math.floor(at / STREAM_GRAIN);
      await this.moveTo(g);
      const inGrain = at - g * STREAM_GRAIN;
      const n = Math.min(STREAM_GRAIN - inGrain, data.length - done);
      this.grain.set(data.subarray(done, done + n), inGrain);
      this.grainDirty = true;
      done += n;
    }
    this.pos = offset + data.length;
  }

  /** Ends the stream: the last grain, the grain tables, the directory, the footer and the end-of-stream marker. */
  async finish(): Promise<void> {
    if (this.finished) return;
    await this.start();
    await this.flushGrain();
    while (this.deflating.length > 0) await this.emitGrain();
    this.finished = true;
    const gtCount = Math.ceil(this.capacity / GT_COVERS);
    const gd = new Uint32Array(gtCount);
    const gtSectors = (GT_ENTRIES * 4) / SECTOR;
    for (let t = 0; t < gtCount; t++) {
      const gt = this.gts.get(t);
      if (!gt) continue; // a table with no grain is not written: its directory entry 0 reads as zeros
      await this.out(metadataMarker(gtSectors, MARKER_GT));
      gd[t] = this.sectorsOut;
      await this.out(le32(gt));
    }
    const gdBytes = padded(le32(gd));
    await this.out(metadataMarker(gdBytes.length / SECTOR, MARKER_GD));
    const gdOffset = this.sectorsOut;
    await this.out(gdBytes);
    await this.out(metadataMarker(1, MARKER_FOOTER));
    await this.out(header(this.capacity, this.descSectors, BigInt(gdOffset)));
    await this.out(metadataMarker(0, MARKER_EOS));
  }
}
