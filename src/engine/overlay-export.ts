/**
 * A writable overlay over a read-only export: writes go to a sparse temporary file, the
 * base is never written. The file is unlinked as soon as it is open, so it disappears
 * when the process ends, however it ends.
 *
 * The overlay works in 4 KiB blocks, each in one of three states: still the base's, in the
 * overlay file, or zero. A write that covers a block partly first fills the rest of the
 * block from what it reads as now (read-modify-write). Writes and zeroing run one at a
 * time, so two partial writes to one block cannot lose each other's bytes; reads run
 * beside them (the NBD protocol leaves overlapping requests in flight unordered).
 * The block states take one byte per block, allocated in pages only where something was
 * written: memory grows with what is written, not with the disk's size.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { IoError, describeCause } from '../errors.js';
import { StateFlag } from '../nbd/constants.js';
import type { ExportBackend, ExportExtent } from '../nbd/export-backend.js';
import { Mutex } from './window.js';

const BLOCK = 4096;
/** Blocks per page of the state map. */
const PAGE = 65536;
const BASE = 0;
const DATA = 1;
const ZERO = 2;

export class OverlayExport implements ExportBackend {
  readonly writable = true;
  readonly size: number;
  private readonly pages = new Map<number, Uint8Array>();
  private readonly writer = new Mutex();
  private closed = false;
  /** Bytes of blocks that hold overlay data (for figures and tests). */
  bytesInOverlay = 0;

  private constructor(private readonly base: ExportBackend, private readonly file: fs.FileHandle, readonly location: string) {
    this.size = base.size;
  }

  /** Creates the overlay file in `dir` (and unlinks it at once). */
  static async create(base: ExportBackend, dir: string): Promise<OverlayExport> {
    const location = path.join(dir, `overlay-${process.pid}-${randomBytes(4).toString('hex')}`);
    let file: fs.FileHandle;
    try {
      file = await fs.open(location, 'wx+', 0o600);
      await fs.unlink(location);
    } catch (err) {
      throw new IoError(`creating the write overlay ${location} failed: ${describeCause(err)}`, { cause: err });
    }
    return new OverlayExport(base, file, location);
  }

  private state(block: number): number {
    return this.pages.get(Math.floor(block / PAGE))?.[block % PAGE] ?? BASE;
  }

  private setState(first: number, last: number, s: number): void {
    for (let b = first; b <= last; b++) {
      const p = Math.floor(b / PAGE);
      let page = this.pages.get(p);
      if (!page) {
        if (s === BASE) continue;
        page = new Uint8Array(PAGE);
        this.pages.set(p, page);
      }
      const old = page[b % PAGE]!;
      if (old === DATA && s !== DATA) this.bytesInOverlay -= BLOCK;
      if (old !== DATA && s === DATA) this.bytesInOverlay += BLOCK;
      page[b % PAGE] = s;
    }
  }

  /** Runs of blocks in one state over [offset, offset + length): [start, end, state]. */
  private *runs(offset: number, length: number): Generator<[number, number, number]> {
    const end = offset + length;
    let start = offset;
    let s = this.state(Math.floor(offset / BLOCK));
    for (let b = Math.floor(offset / BLOCK) + 1; b * BLOCK < end; b++) {
      const t = this.state(b);
      if (t !== s) {
        yield [start, b * BLOCK, s];
        start = b * BLOCK;
        s = t;
      }
    }
    yield [start, end, s];
  }

  async read(offset: number, into: Buffer): Promise<void> {
    if (into.length === 0) return;
    const parts: Promise<void>[] = [];
    for (const [start, end, s] of this.runs(offset, into.length)) {
      const dst = into.subarray(start - offset, end - offset);
      if (s === ZERO) dst.fill(0);
      else if (s === BASE) parts.push(this.base.read(start, dst));
      else parts.push(this.readFile(start, dst));
    }
    await Promise.all(parts);
  }

  private async readFile(offset: number, into: Buffer): Promise<void> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.file.read(into, done, into.length - done, offset + done);
      if (bytesRead === 0) { into.fill(0, done); return; } // beyond the file's end: never written
      done += bytesRead;
    }
  }

  async write(offset: number, data: Buffer): Promise<void> {
    const unlock = await this.writer.lock();
    try {
      await this.writeLocked(offset, data);
    } finally {
      unlock();
    }
  }

  /** Writes whole blocks: the parts of the first and last block outside `data` keep what they read as now. */
  private async writeLocked(offset: number, data: Buffer): Promise<void> {
    if (data.length === 0) return;
    const first = Math.floor(offset / BLOCK);
    const last = Math.floor((offset + data.length - 1) / BLOCK);
    const start = first * BLOCK;
    const end = Math.min(this.size, (last + 1) * BLOCK);
    let out = data;
    if (start !== offset || end !== offset + data.length) {
      out = Buffer.allocUnsafe(end - start);
      if (start < offset) await this.read(start, out.subarray(0, offset - start));
      if (offset + data.length < end) await this.read(offset + data.length, out.subarray(offset + data.length - start));
      data.copy(out, offset - start);
    }
    let done = 0;
    while (done < out.length) {
      const { bytesWritten } = await this.file.write(out, done, out.length - done, start + done);
      done += bytesWritten;
    }
    this.setState(first, last, DATA);
  }

  async zero(offset: number, length: number): Promise<void> {
    const unlock = await this.writer.lock();
    try {
      const end = offset + length;
      const firstWhole = Math.ceil(offset / BLOCK);
      // The last block may be short (a disk size that is not a multiple of 4 KiB): it is whole if the range reaches the end.
      const endWhole = end === this.size ? Math.ceil(end / BLOCK) : Math.floor(end / BLOCK);
      if (firstWhole >= endWhole) {
        await this.writeLocked(offset, Buffer.alloc(length));
        return;
      }
      if (offset < firstWhole * BLOCK) await this.writeLocked(offset, Buffer.alloc(firstWhole * BLOCK - offset));
      this.setState(firstWhole, endWhole - 1, ZERO);
      if (endWhole * BLOCK < end) await this.writeLocked(endWhole * BLOCK, Buffer.alloc(end - endWhole * BLOCK));
    } finally {
      unlock();
    }
  }

  /** Trimmed blocks read as zeros; partly trimmed blocks are left as they are (trim is a hint). */
  async trim(offset: number, length: number): Promise<void> {
    const unlock = await this.writer.lock();
    try {
      const end = offset + length;
      const firstWhole = Math.ceil(offset / BLOCK);
      const endWhole = end === this.size ? Math.ceil(end / BLOCK) : Math.floor(end / BLOCK);
      if (firstWhole < endWhole) this.setState(firstWhole, endWhole - 1, ZERO);
    } finally {
      unlock();
    }
  }

  /** The overlay is thrown away when the server stops: there is nothing to make durable. */
  async flush(): Promise<void> {}

  async blockStatus(offset: number, length: number): Promise<ExportExtent[]> {
    const out: ExportExtent[] = [];
    const push = (e: ExportExtent) => {
      const prev = out[out.length - 1];
      if (prev && prev.flags === e.flags) out[out.length - 1] = { length: prev.length + e.length, flags: e.flags };
      else out.push(e);
    };
    for (const [start, end, s] of this.runs(offset, length)) {
      if (s === DATA) push({ length: end - start, flags: 0 });
      else if (s === ZERO) push({ length: end - start, flags: StateFlag.HOLE | StateFlag.ZERO });
      else if (!this.base.blockStatus) push({ length: end - start, flags: 0 });
      else {
        // The base may answer for less than asked: whatever it left out is reported as data.
        let at = start;
        for (const e of await this.base.blockStatus(start, end - start)) {
          const n = Math.min(e.length, end - at);
          if (n <= 0) break;
          push({ length: n, flags: e.flags });
          at += n;
        }
        if (at < end) push({ length: end - at, flags: 0 });
      }
      if (out.length >= 1024) break;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }
}
