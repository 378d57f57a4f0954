/**
 * Reads a streamOptimized VMDK as it arrives (the format vSphere's export leases deliver
 * disks in; VMware "Virtual Disk Format 5.0"): a sparse header with the compressed-grain
 * and marker flags, then markers — a grain marker (LBA in sectors, compressed size, then
 * zlib-deflated bytes padded to a sector) or a metadata marker (grain table, directory,
 * footer: skipped; end of stream: the end). Grains that are not sent read as zeros.
 */
import { promisify } from 'node:util';
import { inflate } from 'node:zlib';
import { IoError } from '../errors.js';

const inflateAsync = promisify(inflate);
const SECTOR = 512;
const MAGIC = 0x564d444b; // "KDMV"
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;

export interface StreamGrain {
  /** Byte offset of the grain in the disk. */
  readonly offset: number;
  readonly data: Buffer;
}

/** Exact-size reads over a stream of chunks. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private have = 0;
  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** `n` bytes, or undefined when the stream ended before any of them. */
  async take(n: number): Promise<Buffer | undefined> {
    while (this.have < n) {
      const r = await this.source.next();
      if (r.done) {
        if (this.have === 0) return undefined;
        throw new IoError(`the stream ended in the middle of a record (${this.have} of ${n} bytes)`);
      }
      this.chunks.push(r.value);
      this.have += r.value.length;
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.have -= n;
    return all.subarray(0, n);
  }

  async skip(n: number): Promise<void> {
    for (let left = n; left > 0;) {
      const step = Math.min(left, 1 << 20);
      if (!(await this.take(step))) throw new IoError('the stream ended while skipping metadata');
      left -= step;
    }
  }
}

/**
 * The grains of a streamOptimized VMDK of `capacity` bytes, in stream order. Fails on
 * anything else (a flat file, a truncated stream, a grain outside the disk).
 */
export async function* streamGrains(chunks: AsyncIterable<Buffer>, capacity: number, what: string): AsyncGenerator<StreamGrain> {
  const q = new ByteQueue(chunks[Symbol.asyncIterator]());
  const h = await q.take(SECTOR);
  if (!h || h.readUInt32LE(0) !== MAGIC) throw new IoError(`${what}: not a VMDK stream (no sparse header)`);
  const flags = h.readUInt32LE(8);
  if ((flags & FLAG_COMPRESSED) === 0 || (flags & FLAG_MARKERS) === 0 || h.readUInt16LE(77) !== 1) {
    throw new IoError(`${what}: the VMDK is not streamOptimized (flags ${flags.toString(16)})`);
  }
  const sectors = Number(h.readBigUInt64LE(12));
  if (sectors * SECTOR !== capacity) throw new IoError(`${what}: the stream's disk has ${sectors * SECTOR} bytes, the VM's ${capacity}`);
  const grainBytes = Number(h.readBigUInt64LE(20)) * SECTOR;
  await q.skip((Number(h.readBigUInt64LE(64)) - 1) * SECTOR); // to the end of the overhead (header, descriptor)
  for (;;) {
    const m = await q.take(12);
    if (!m) throw new IoError(`${what}: the stream ended without its end-of-stream marker`);
    const value = Number(m.readBigUInt64LE(0));
    const size = m.readUInt32LE(8);
    if (size === 0) {
      const rest = await q.take(SECTOR - 12);
      if (!rest) throw new IoError(`${what}: the stream ended inside a marker`);
      if (rest.readUInt32LE(0) === 0) return; // end of stream
      await q.skip(value * SECTOR); // grain table, grain directory or footer
      continue;
    }
    const body = await q.take(size);
    if (!body) throw new IoError(`${what}: the stream ended inside a grain`);
    await q.skip((SECTOR - ((12 + size) % SECTOR)) % SECTOR);
    const data = await inflateAsync(body);
    const offset = value * SECTOR;
    if (data.length > grainBytes || offset + data.length > capacity) {
      throw new IoError(`${what}: a grain at sector ${value} (${data.length} bytes) lies outside the disk`);
    }
    yield { offset, data };
  }
}
