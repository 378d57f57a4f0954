/**
 * One client of the NBD server: negotiation (server-negotiation.ts), then transmission.
 *
 * Transmission: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS and DISC. Up to
 * MAX_IN_FLIGHT requests of a connection run at once and are answered as they finish, in
 * any order. A connection stops reading requests while it is at that limit or while its
 * replies wait to be sent, so a client that floods requests, or does not read its replies,
 * holds a bounded amount of memory. A client that breaks the framing of the protocol (bad
 * magic, unknown client flags, an oversized option or write payload) is disconnected;
 * every other mistake gets an error reply and the connection goes on.
 */
import type { Socket } from 'node:net';
import { describeCause } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import { Cmd, CmdFlag, ErrnoCode, REQUEST_MAGIC, ReplyFlag, ReplyType, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC } from './constants.js';
import type { ExportBackend, ExportExtent } from './export-backend.js';
import type { ServerContext } from './server-context.js';
import { type Link, Negotiation } from './server-negotiation.js';
import { BASE_ALLOCATION_ID, MAX_MESSAGE, MAX_PAYLOAD, ProtocolViolation } from './server-shared.js';

const MAX_IN_FLIGHT = 16;
/** Bytes of read and write payloads in flight plus replies not yet sent, per connection. */
const MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
/** base:allocation descriptors in one reply at most; the client asks again for the rest. */
const MAX_DESCRIPTORS = 8192;

/** The NBD error number for a backend failure. */
function errnoFor(err: unknown): number {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return ErrnoCode.ENOSPC;
  }
  return ErrnoCode.EIO;
}

const CMD_NAMES: Record<number, string> = {
  [Cmd.READ]: 'read', [Cmd.WRITE]: 'write', [Cmd.FLUSH]: 'flush', [Cmd.TRIM]: 'trim', [Cmd.CACHE]: 'cache',
  [Cmd.WRITE_ZEROES]: 'write-zeroes', [Cmd.BLOCK_STATUS]: 'block-status',
};

interface Request {
  readonly cookie: Buffer;
  readonly type: number;
  readonly flags: number;
  readonly offset: number;
  readonly length: number;
  readonly payload?: Buffer;
}

export class Connection {
  /** The socket and its reader; TLS ones once the client upgraded. */
  private readonly link: Link;
  private readonly what: string;
  /** Set by negotiation. */
  private structured = false;
  private baseAllocation = false;
  private inflight = 0;
  private bytesInFlight = 0;
  private waiters: (() => void)[] = [];
  private stopping = false;
  private negotiating = true;
  private readonly done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly server: ServerContext, socket: Socket, id: number) {
    this.what = `NBD client ${id}`;
    this.link = { socket, reader: new ByteReader(socket, this.what) };
    this.done = new Promise((resolve) => { this.finish = resolve; });
    socket.setNoDelay(true);
    this.watch(socket);
  }

  private get backend(): ExportBackend { return this.server.backend; }
  private get socket(): Socket { return this.link.socket; }
  private get reader(): ByteReader { return this.link.reader; }

  private watch(socket: Socket): void {
    socket.on('drain', () => this.changed());
    socket.on('close', () => this.changed());
  }

  async run(): Promise<void> {
    try {
      const timeout = this.server.options.negotiationTimeoutMs ?? 60_000;
      const plain = this.socket;
      // Destroying the socket also ends a TLS handshake that is waiting for the client.
      const timer = setTimeout(() => {
        this.reader.fail(new ProtocolViolation(`${this.what} did not finish negotiating in ${timeout} ms`));
        plain.destroy();
      }, timeout);
      const negotiation = new Negotiation(this.server, this.link, this.what, () => this.stopping);
      let go: boolean;
      try {
        go = await negotiation.negotiate();
      } finally {
        clearTimeout(timer);
      }
      this.negotiating = false;
      if (this.socket !== plain) this.watch(this.socket);
      this.structured = negotiation.structured;
      this.baseAllocation = negotiation.baseAllocation;
      if (go) await this.transmit();
      await this.idle();
      this.socket.end();
    } catch (err) {
      if (err instanceof ProtocolViolation && !this.stopping) this.server.warn(`${err.message}; disconnected it`);
      await this.idle();
      this.socket.destroy();
    } finally {
      this.finish();
    }
  }

  /** Stops reading requests, lets those in flight finish, then closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.reader.fail(new Error(`${this.what}: the server is stopping`));
    // Nothing is in flight before transmission; this also ends a TLS handshake at once.
    if (this.negotiating) this.socket.destroy();
    await this.done;
  }

  // ---- transmission -------------------------------------------------------------

  private async transmit(): Promise<void> {
    for (;;) {
      await this.room();
      const h = await this.reader.read(28);
      if (h.readUInt32BE(0) !== REQUEST_MAGIC) throw new ProtocolViolation(`${this.what} sent a request with a bad magic number 0x${h.readUInt32BE(0).toString(16)}`);
      const flags = h.readUInt16BE(4);
      const type = h.readUInt16BE(6);
      const offset = h.readBigUInt64BE(16);
      const length = h.readUInt32BE(24);
      if (type === Cmd.DISC) return;
      let payload: Buffer | undefined;
      if (type === Cmd.WRITE) {
        // The payload cannot be skipped without reading it all: a write too large to take is a disconnect.
        if (length > MAX_PAYLOAD) throw new ProtocolViolation(`${this.what} sent a write of ${length} bytes, more than the maximum of ${MAX_PAYLOAD}`);
        payload = await this.reader.read(length);
      }
      const req: Request = {
        cookie: Buffer.from(h.subarray(8, 16)), type, flags,
        // Beyond 2^53 a request is out of bounds anyway; the exact offset does not matter.
        offset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset), length,
        ...(payload ? { payload } : {}),
      };
      const bytes = (type === Cmd.READ ? Math.min(length, MAX_PAYLOAD) : 0) + (payload?.length ?? 0);
      this.inflight++;
      this.bytesInFlight += bytes;
      void this.serve(req).finally(() => {
        this.inflight--;
        this.bytesInFlight -= bytes;
        this.changed();
      });
    }
  }

  /** Waits, not reading the socket, until another request may start. */
  private async room(): Promise<void> {
    while (this.inflight >= MAX_IN_FLIGHT
      || (this.inflight > 0 && this.bytesInFlight + this.socket.writableLength > MAX_BYTES_IN_FLIGHT && !this.socket.destroyed)) {
      this.socket.pause();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.socket.resume();
  }

  private async idle(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private changed(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Why a request cannot be served, before it is tried: [errno, message], or undefined. */
  private check(r: Request): [number, string] | undefined {
    const b = this.backend;
    if (!(r.type in CMD_NAMES)) return [ErrnoCode.EINVAL, `unknown command ${r.type}`];
    if (r.type === Cmd.CACHE) return [ErrnoCode.EINVAL, 'cache is not supported'];
    let allowed = b.writable ? CmdFlag.FUA : 0;
    if (r.type === Cmd.WRITE_ZEROES) allowed |= CmdFlag.NO_HOLE;
    if (r.type === Cmd.BLOCK_STATUS) allowed |= CmdFlag.REQ_ONE;
    if (r.flags & ~allowed) return [ErrnoCode.EINVAL, `command flags 0x${r.flags.toString(16)} are not valid for ${CMD_NAMES[r.type]}`];
    const writes = r.type === Cmd.WRITE || r.type === Cmd.TRIM || r.type === Cmd.WRITE_ZEROES;
    if (writes && !b.writable) return [ErrnoCode.EPERM, 'the export is read-only'];
    if (r.type === Cmd.FLUSH) return undefined;
    if (r.type === Cmd.BLOCK_STATUS && !this.baseAllocation) return [ErrnoCode.EINVAL, 'no meta context was negotiated'];
    if (r.length === 0) return [ErrnoCode.EINVAL, 'the length is zero'];
    if (r.type === Cmd.READ && r.length > MAX_PAYLOAD) {
      return [this.structured ? ErrnoCode.EOVERFLOW : ErrnoCode.EINVAL, `a read of ${r.length} bytes is more than the maximum of ${MAX_PAYLOAD}`];
    }
    if (r.offset + r.length > b.size) {
      return [writes ? ErrnoCode.ENOSPC : ErrnoCode.EINVAL, `the range ends beyond the end of the export (${b.size} bytes)`];
    }
    return undefined;
  }

  private async serve(r: Request): Promise<void> {
    const refused = this.stopping ? [ErrnoCode.ESHUTDOWN, 'the server is stopping'] as [number, string] : this.check(r);
    if (refused) {
      this.replyError(r, refused[0], refused[1]);
      return;
    }
    const b = this.backend;
    try {
      switch (r.type) {
        case Cmd.READ: {
          const { buf, give } = this.server.buffers.take(r.length);
          try {
            await b.read(r.offset, buf);
          } catch (err) {
            give();
            throw err;
          }
          this.replyData(r, buf, give);
          return;
        }
        case Cmd.WRITE:
          await b.write!(r.offset, r.payload!);
          if (r.flags & CmdFlag.FUA) await b.flush?.();
          break;
        case Cmd.WRITE_ZEROES:
          await b.zero!(r.offset, r.length);
          if (r.flags & CmdFlag.FUA) await b.flush?.();
          break;
        case Cmd.TRIM:
          await b.trim!(r.offset, r.length);
          if (r.flags & CmdFlag.FUA) await b.flush?.();
          break;
        case Cmd.FLUSH:
          await b.flush?.();
          break;
        case Cmd.BLOCK_STATUS:
          this.replyBlockStatus(r, await b.blockStatus!(r.offset, r.length));
          return;
      }
      this.replySimple(r, 0);
    } catch (err) {
      const errno = errnoFor(err);
      const message = describeCause(err);
      this.server.warn(`${this.what}: ${CMD_NAMES[r.type]} of ${r.length} bytes at offset ${r.offset} failed, answered ${errno === ErrnoCode.ENOSPC ? 'ENOSPC' : 'EIO'}: ${message}`);
      this.replyError(r, errno, message);
    }
  }

  /** Writes a reply's parts together; `sent` runs once the socket is done with them. */
  private send(parts: Buffer[], sent?: () => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      sent?.();
      return;
    }
    this.socket.cork();
    parts.forEach((p, i) => this.socket.write(p, i === parts.length - 1 && sent ? () => sent() : undefined));
    this.socket.uncork();
  }

  private replySimple(r: Request, error: number, data?: Buffer, sent?: () => void): void {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    r.cookie.copy(h, 8);
    this.send(data ? [h, data] : [h], sent);
  }

  private chunkHeader(r: Request, type: number, length: number): Buffer {
    const h = Buffer.alloc(20);
    h.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(ReplyFlag.DONE, 4);
    h.writeUInt16BE(type, 6);
    r.cookie.copy(h, 8);
    h.writeUInt32BE(length, 16);
    return h;
  }

  private replyData(r: Request, data: Buffer, sent: () => void): void {
    if (!this.structured) {
      this.replySimple(r, 0, data, sent);
      return;
    }
    // One data chunk, final: all of it was read and checked before anything is sent.
    const h = this.chunkHeader(r, ReplyType.OFFSET_DATA, 8 + data.length);
    const at = Buffer.alloc(8);
    at.writeBigUInt64BE(BigInt(r.offset));
    this.send([h, at, data], sent);
  }

  /** An error: with structured replies an error chunk carrying the message, else a simple reply. */
  private replyError(r: Request, error: number, message: string): void {
    if (!this.structured) {
      this.replySimple(r, error);
      return;
    }
    const text = Buffer.from(message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message);
    const h = this.chunkHeader(r, ReplyType.ERROR, 6 + text.length);
    const p = Buffer.alloc(6);
    p.writeUInt32BE(error, 0);
    p.writeUInt16BE(text.length, 4);
    this.send([h, p, text]);
  }

  private replyBlockStatus(r: Request, extents: readonly ExportExtent[]): void {
    const max = r.flags & CmdFlag.REQ_ONE ? 1 : MAX_DESCRIPTORS;
    const out: number[] = [];
    let covered = 0;
    for (const e of extents) {
      if (out.length / 2 >= max || covered >= r.length) break;
      const n = Math.min(e.length, r.length - covered);
      if (n <= 0) continue;
      out.push(n, e.flags >>> 0);
      covered += n;
    }
    if (out.length === 0) out.push(r.length, 0); // "allocated, not known to be zero" is always true
    const payload = Buffer.alloc(4 + out.length * 4);
    payload.writeUInt32BE(BASE_ALLOCATION_ID, 0);
    out.forEach((v, i) => payload.writeUInt32BE(v, 4 + i * 4));
    this.send([this.chunkHeader(r, ReplyType.BLOCK_STATUS, payload.length), payload]);
  }
}
