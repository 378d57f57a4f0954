/**
 * A synthetic 1 TiB DiskSource for tests: data in a few extents of deterministic bytes, holes
 * elsewhere, and its allocation reported (as NBD and vSphere sources do), so that a test
 * reads only what holds data. Each 64 KiB block's bytes come from its offset and the version
 * `version(offset)` gives it: a test rewrites blocks by changing what that returns.
 */
import { createHash } from 'node:crypto';
import type { DiskSource, Extent } from '../src/sources/types.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const BLOCK = 65536;

export class SparseDisk implements DiskSource {
  readonly description = 'test:sparse-1TiB';
  readonly size = 2 ** 40;
  /** 8 MiB of data at 0, 7, 300 and 1023 GiB. */
  readonly extents: Extent[] = [0, 7, 300, 1023].map((g) => ({ start: g * GiB, length: 8 * MiB }));
  /** What changedSince answers, and the change token's number. */
  changed: Extent[] = [];
  generation = 0;
  bytesRead = 0;

  /** `version(offset)`: the version of the 64 KiB block at `offset` (0 = as first written). */
  constructor(private readonly version: (offset: number, generation: number) => number = () => 0) {}

  async allocated(): Promise<Extent[]> { return this.extents; }
  async changedSince(): Promise<Extent[]> { return this.changed; }
  async changeToken(): Promise<string | undefined> { return `token-${this.generation}`; }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.bytesRead += length;
    const buf = into ?? Buffer.alloc(length);
    buf.fill(0, 0, length);
    for (const e of this.extents) {
      const from = Math.max(offset, e.start);
      const to = Math.min(offset + length, e.start + e.length);
      for (let o = from - (from % BLOCK); o < to; o += BLOCK) {
        const v = this.version(o, this.generation);
        const block = createHash('sha256').update(v === 0 ? `block ${o}` : `block ${o} ${v}`).digest();
        for (let k = Math.max(o, from); k < Math.min(o + BLOCK, to); k++) buf[k - offset] = block[(k - o) % 32]! ^ (k & 0xff);
      }
    }
    return buf;
  }

  async close(): Promise<void> {}
}
