/**
 * `nbd://` and `nbd+unix://` disks: a DiskSource that asks the server where data is
 * (base:allocation) so backup skips holes without reading them, and a DiskTarget.
 */
import { IoError, InputError } from '../errors.js';
import { BASE_ALLOCATION, NbdClient } from '../nbd/client.js';
import { StateFlag, TransmissionFlag } from '../nbd/constants.js';
import { parseNbdUri } from '../nbd/uri.js';
import type { DiskSource, DiskTarget, Extent, ChangesUnknown } from './types.js';

/** Largest single request: servers commonly cap at 32 MiB; the engine reads 4 MiB segments. */
const MAX_REQUEST = 32 * 1024 * 1024;
/** qemu:dirty-bitmap descriptor flag: the extent changed. */
const DIRTY = 1;

/**
 * The change token of a QEMU dirty bitmap: its meta context's name. An NBD source opened
 * with the bitmap answers changedSince(token) with the extents the bitmap marks (since
 * when is the bitmap's business: whoever manages it creates or clears it at a backup).
 */
export function dirtyBitmapContext(name: string): string {
  return `qemu:dirty-bitmap:${name}`;
}

/** Block status is asked in windows of this size. */
const STATUS_WINDOW = 1024 * 1024 * 1024;

/** Connections an NBD source opens when the server allows several (CAN_MULTI_CONN). */
export const MULTI_CONN = 4;

export class NbdSource implements DiskSource {
  private next = 0;

  private constructor(private readonly client: NbdClient, private readonly readers: readonly NbdClient[], readonly description: string) {}

  /** How many connections reads are spread over. */
  get connections(): number {
    return this.readers.length;
  }

  /** With `bitmap`, also asks for qemu:dirty-bitmap:NAME so that changedSince(dirtyBitmapContext(NAME)) can answer. */
  static async open(uri: string, bitmap?: string): Promise<NbdSource> {
    const contexts = bitmap === undefined ? [BASE_ALLOCATION] : [BASE_ALLOCATION, dirtyBitmapContext(bitmap)];
    const client = await NbdClient.connect(parseNbdUri(uri), { metaContexts: contexts });
    if (bitmap !== undefined && !client.info.metaContexts.has(dirtyBitmapContext(bitmap))) {
      await client.close();
      throw new InputError(`${client.description} does not export dirty bitmap ${bitmap} (serve it with qemu-nbd -B ${bitmap})`);
    }
    const readers = [client];
    if (client.can(TransmissionFlag.CAN_MULTI_CONN)) {
      try {
        for (let i = 1; i < MULTI_CONN; i++) readers.push(await NbdClient.connect(parseNbdUri(uri)));
      } catch (err) {
        await Promise.all(readers.map((c) => c.close().catch(() => {})));
        throw err;
      }
    }
    return new NbdSource(client, readers, client.description);
  }

  get size(): number {
    return this.client.size;
  }

  async allocated(offset: number, length: number): Promise<Extent[]> {
    if (!this.client.info.metaContexts.has(BASE_ALLOCATION)) return length > 0 ? [{ start: offset, length }] : [];
    // A hole that reads as zeros is skipped; anything else may hold data.
    return this.extentsWhere(BASE_ALLOCATION, offset, length, (flags) => !((flags & StateFlag.HOLE) && (flags & StateFlag.ZERO)));
  }

  /** Merged extents of [offset, offset+length) whose flags in a meta context satisfy `want`. */
  private async extentsWhere(context: string, offset: number, length: number, want: (flags: number) => boolean): Promise<Extent[]> {
    const out: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const extents = await this.client.blockStatus(context, pos, Math.min(STATUS_WINDOW, end - pos));
      if (extents.length === 0) throw new IoError(`${this.description}: block status of ${context} at offset ${pos} returned no extents`);
      for (const e of extents) {
        const len = Math.min(e.length, end - pos);
        if (len <= 0) break;
        if (want(e.flags)) {
          const last = out[out.length - 1];
          if (last && last.start + last.length === pos) out[out.length - 1] = { start: last.start, length: last.length + len };
          else out.push({ start: pos, length: len });
        }
        pos += len;
      }
    }
    return out;
  }

  /** The extents a dirty bitmap marks as changed, when `token` names one this source was opened with. */
  async changedSince(token: string): Promise<Extent[] | ChangesUnknown> {
    if (!token.startsWith(dirtyBitmapContext('')) || !this.client.info.metaContexts.has(token)) {
      return { unknown: `${this.description} has no change tracking` };
    }
    return this.extentsWhere(token, 0, this.size, (flags) => (flags & DIRTY) !== 0);
  }

  async changeToken(): Promise<string | undefined> {
    return undefined;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const parts: Promise<Buffer>[] = [];
    for (let o = 0; o < length; o += MAX_REQUEST) {
      const reader = this.readers[this.next++ % this.readers.length]!;
      parts.push(reader.read(offset + o, Math.min(MAX_REQUEST, length - o), buf.subarray(o, Math.min(length, o + MAX_REQUEST))));
    }
    await Promise.all(parts);
    return buf;
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((c) => c.close()));
  }
}

export class NbdTarget implements DiskTarget {
  readonly zeroed = false;

  private constructor(private readonly client: NbdClient, readonly description: string) {}

  static async open(uri: string, size: number): Promise<NbdTarget> {
    const client = await NbdClient.connect(parseNbdUri(uri));
    if (client.readOnly) {
      await client.close();
      throw new InputError(`restore target ${client.description} is read-only`);
    }
    if (client.size !== size) {
      await client.close();
      throw new InputError(`restore target ${client.description} is ${client.size} bytes; the disk is ${size}`);
    }
    return new NbdTarget(client, client.description);
  }

  get size(): number {
    return this.client.size;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    for (let o = 0; o < data.length; o += MAX_REQUEST) await this.client.write(offset + o, data.subarray(o, Math.min(data.length, o + MAX_REQUEST)));
  }

  async zero(offset: number, length: number): Promise<void> {
    if (this.client.can(TransmissionFlag.SEND_WRITE_ZEROES)) {
      for (let o = 0; o < length; o += MAX_REQUEST) await this.client.writeZeroes(offset + o, Math.min(MAX_REQUEST, length - o));
    } else {
      await this.write(offset, Buffer.alloc(length));
    }
  }

  async flush(): Promise<void> {
    if (this.client.can(TransmissionFlag.SEND_FLUSH)) await this.client.flush();
  }

  /** Reads back what was written, so a restore can check it against its digests. */
  async read(offset: number, length: number, into: Buffer): Promise<Buffer> {
    for (let o = 0; o < length; o += MAX_REQUEST) {
      const n = Math.min(MAX_REQUEST, length - o);
      await this.client.read(offset + o, n, into.subarray(o, o + n));
    }
    return into.subarray(0, length);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
