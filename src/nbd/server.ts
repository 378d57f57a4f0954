/**
 * An NBD server (fixed newstyle) for one export. It knows nothing of what it serves: an
 * ExportBackend gives the size and does the reads (and writes, when writable).
 *
 * Negotiation: NBD_OPT_EXPORT_NAME, NBD_OPT_INFO / NBD_OPT_GO (NBD_INFO_EXPORT,
 * NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, NBD_INFO_DESCRIPTION), NBD_OPT_LIST, NBD_OPT_ABORT,
 * NBD_OPT_STRUCTURED_REPLY and, when the backend reports allocation, the base:allocation
 * meta context. Any other option is answered NBD_REP_ERR_UNSUP.
 *
 * Transmission: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS and DISC. Up to
 * MAX_IN_FLIGHT requests of a connection run at once and are answered as they finish, in
 * any order. A connection stops reading requests while it is at that limit or while its
 * replies wait to be sent, so a client that floods requests, or does not read its replies,
 * holds a bounded amount of memory. A client that breaks the framing of the protocol (bad
 * magic, unknown client flags, an oversized option or write payload) is disconnected;
 * every other mistake gets an error reply and the connection goes on.
 */
import { promises as fs } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { IoError, UsageError, describeCause } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import {
  Cmd, CmdFlag, ErrnoCode, HandshakeFlag, IHAVEOPT, Info, NBDMAGIC, OPTION_REPLY_MAGIC, Opt, REP_ERROR_BIT, REQUEST_MAGIC, Rep,
  RepErrorCode, ReplyFlag, ReplyType, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, TransmissionFlag,
} from './constants.js';
import { NbdProtocolError } from './errors.js';

/** base:allocation extents, as a backend reports them: `flags` are StateFlag bits. */
export interface ExportExtent {
  readonly length: number;
  readonly flags: number;
}

/**
 * What the server serves. `read` fills every byte of `into` (the server may hand it a
 * reused buffer). A writable backend has `write`, `zero` and `trim`; `flush` is optional.
 * Errors thrown become NBD errors: ENOSPC when the cause is a full disk (ENOSPC, EDQUOT,
 * EFBIG), EIO otherwise.
 */
export interface ExportBackend {
  readonly size: number;
  readonly writable: boolean;
  read(offset: number, into: Buffer): Promise<void>;
  write?(offset: number, data: Buffer): Promise<void>;
  /** Makes the range read as zeros. */
  zero?(offset: number, length: number): Promise<void>;
  /** The range is no longer needed; it may read as anything afterwards (zeros, here). */
  trim?(offset: number, length: number): Promise<void>;
  flush?(): Promise<void>;
  /**
   * base:allocation from `offset`: extents that together cover at least one byte and at
   * most `length` bytes. Without it, the server offers no meta context.
   */
  blockStatus?(offset: number, length: number): Promise<ExportExtent[]>;
}

export interface NbdServerOptions {
  /** The export's name; the empty name (the default export) is accepted as well. */
  readonly name: string;
  /** Shown to clients that ask (NBD_INFO_DESCRIPTION, NBD_OPT_LIST). */
  readonly description?: string;
  /** A request that failed, a client disconnected for breaking the protocol. */
  readonly onWarning?: (message: string) => void;
  /** Connections at once; more are closed at once. */
  readonly maxConnections?: number;
  /** A client that has not finished negotiating after this long is disconnected. */
  readonly negotiationTimeoutMs?: number;
}

export type ListenAddress =
  | { readonly transport: 'unix'; readonly path: string }
  | { readonly transport: 'tcp'; readonly host: string; readonly port: number };

/** Largest READ or WRITE payload (the usual 32 MiB); larger reads get EOVERFLOW/EINVAL, larger writes a disconnect. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
const MIN_BLOCK = 1;
const PREFERRED_BLOCK = 4096;
/** Option data beyond this is not read: the client is disconnected. */
const MAX_OPTION_DATA = 64 * 1024;
const MAX_IN_FLIGHT = 16;
/** Bytes of read and write payloads in flight plus replies not yet sent, per connection. */
const MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
/** base:allocation descriptors in one reply at most; the client asks again for the rest. */
const MAX_DESCRIPTORS = 8192;
const BASE_ALLOCATION = 'base:allocation';
const BASE_ALLOCATION_ID = 1;
const MAX_MESSAGE = 4096;

/** unix:PATH or tcp:HOST:PORT (HOST may be [IPv6]); PORT 0 picks a free port. */
export function parseListenAddress(s: string): ListenAddress {
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    if (!p) throw new UsageError(`--listen ${JSON.stringify(s)}: give unix:PATH`);
    return { transport: 'unix', path: p };
  }
  const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(s);
  if (m && Number(m[2]) <= 65535) return { transport: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new UsageError(`--listen ${JSON.stringify(s)} is not an address: give unix:PATH or tcp:HOST:PORT`);
}

/** The NBD URI a client uses to reach `name` at `address` (port as bound). */
export function exportUri(address: ListenAddress, name: string): string {
  const e = encodeURIComponent(name);
  if (address.transport === 'unix') return `nbd+unix:///${e}?socket=${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `nbd://${host}:${address.port}/${e}`;
}

/** A client broke the protocol: it is disconnected. */
class ProtocolViolation extends NbdProtocolError {}

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

/**
 * Buffers for read replies, by size class (powers of two from 4 KiB), reused once the
 * socket has sent them: a busy export answers thousands of reads a second, and a fresh
 * buffer for each is garbage for the collector to catch up with. At most KEPT_BYTES are
 * kept.
 */
class ReplyBuffers {
  private static readonly KEPT_BYTES = 16 * 1024 * 1024;
  private readonly free = new Map<number, Buffer[]>();
  private kept = 0;

  take(n: number): { buf: Buffer; give: () => void } {
    const size = Math.max(4096, 2 ** Math.ceil(Math.log2(Math.max(1, n))));
    const reused = this.free.get(size)?.pop();
    if (reused) this.kept -= size;
    const whole = reused ?? Buffer.allocUnsafeSlow(size);
    let given = false;
    return {
      buf: whole.subarray(0, n),
      give: () => {
        if (given || this.kept + size > ReplyBuffers.KEPT_BYTES) return;
        given = true;
        const l = this.free.get(size) ?? [];
        l.push(whole);
        this.free.set(size, l);
        this.kept += size;
      },
    };
  }
}

export class NbdServer {
  private server: Server | undefined;
  /** Read reply buffers shared by the connections. */
  readonly buffers = new ReplyBuffers();
  private readonly connections = new Set<Connection>();
  private nextId = 1;
  private closing = false;
  readonly flags: number;

  constructor(readonly backend: ExportBackend, readonly options: NbdServerOptions) {
    let flags = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH;
    if (backend.writable) {
      if (!backend.write || !backend.zero || !backend.trim) throw new TypeError('a writable export backend needs write, zero and trim');
      flags |= TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES;
    } else {
      // Nothing changes, so every connection sees the same data: clients may open several.
      flags |= TransmissionFlag.READ_ONLY | TransmissionFlag.CAN_MULTI_CONN;
    }
    this.flags = flags;
  }

  /** Starts listening; resolves with the address as bound (the port chosen for port 0). */
  async listen(address: ListenAddress): Promise<ListenAddress> {
    if (this.server) throw new Error('the NBD server is listening already');
    const server = createServer((socket) => this.accept(socket));
    const where = address.transport === 'unix' ? `unix:${address.path}` : `tcp:${address.host}:${address.port}`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new IoError(`listening on ${where} failed: ${describeCause(err)}`, { cause: err })));
      if (address.transport === 'unix') server.listen(address.path, () => resolve());
      else server.listen({ host: address.host, port: address.port }, () => resolve());
    });
    server.on('error', (err) => this.warn(`NBD server on ${where}: ${describeCause(err)}`));
    this.server = server;
    if (address.transport === 'unix') {
      await fs.chmod(address.path, 0o600).catch(() => {});
      return address;
    }
    return { ...address, port: (server.address() as AddressInfo).port };
  }

  /** Serves one connected socket (listen uses this; so can a test). */
  accept(socket: Socket): void {
    const max = this.options.maxConnections ?? 64;
    if (this.closing || this.connections.size >= max) {
      if (!this.closing) this.warn(`refused a connection: ${max} clients are connected already`);
      socket.destroy();
      return;
    }
    const conn = new Connection(this, socket, this.nextId++);
    this.connections.add(conn);
    void conn.run().finally(() => this.connections.delete(conn));
  }

  /**
   * Stops listening and ends every connection: requests already being served are finished
   * and answered first (a backend call is never cut short), then the sockets are closed.
   */
  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.all([...this.connections].map((c) => c.stop()));
    await closed;
  }

  warn(message: string): void {
    this.options.onWarning?.(message);
  }

  matches(name: string): boolean {
    return name === this.options.name || name === '';
  }
}

interface Request {
  readonly cookie: Buffer;
  readonly type: number;
  readonly flags: number;
  readonly offset: number;
  readonly length: number;
  readonly payload?: Buffer;
}

class Connection {
  private readonly reader: ByteReader;
  private readonly what: string;
  private structured = false;
  private baseAllocation = false;
  private noZeroes = false;
  private inflight = 0;
  private bytesInFlight = 0;
  private waiters: (() => void)[] = [];
  private stopping = false;
  private readonly done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly server: NbdServer, private readonly socket: Socket, id: number) {
    this.what = `NBD client ${id}`;
    this.reader = new ByteReader(socket, this.what);
    this.done = new Promise((resolve) => { this.finish = resolve; });
    socket.setNoDelay(true);
    socket.on('drain', () => this.changed());
    socket.on('close', () => this.changed());
  }

  private get backend(): ExportBackend { return this.server.backend; }

  async run(): Promise<void> {
    try {
      const timeout = this.server.options.negotiationTimeoutMs ?? 60_000;
      const timer = setTimeout(() => this.reader.fail(new ProtocolViolation(`${this.what} did not finish negotiating in ${timeout} ms`)), timeout);
      let go: boolean;
      try {
        go = await this.negotiate();
      } finally {
        clearTimeout(timer);
      }
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
    await this.done;
  }

  // ---- negotiation --------------------------------------------------------------

  /** True when the client chose the export (transmission follows), false when it went away. */
  private async negotiate(): Promise<boolean> {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
    this.socket.write(hello);
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0);
    if (clientFlags & ~(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)) {
      throw new ProtocolViolation(`${this.what} sent unknown client flags 0x${clientFlags.toString(16)}`);
    }
    this.noZeroes = (clientFlags & HandshakeFlag.NO_ZEROES) !== 0;

    for (;;) {
      const head = await this.reader.read(16);
      if (head.readBigUInt64BE(0) !== IHAVEOPT) throw new ProtocolViolation(`${this.what} sent an option with a bad magic number`);
      const option = head.readUInt32BE(8);
      const length = head.readUInt32BE(12);
      if (length > MAX_OPTION_DATA) throw new ProtocolViolation(`${this.what} sent option ${option} with ${length} bytes of data`);
      const data = await this.reader.read(length);
      if (this.stopping && option !== Opt.ABORT) {
        this.optionError(option, RepErrorCode.SHUTDOWN, 'the server is stopping');
        continue;
      }
      switch (option) {
        case Opt.EXPORT_NAME: {
          const name = data.toString('utf8');
          // This option cannot be answered with an error: the protocol says to disconnect.
          if (!this.server.matches(name)) throw new ProtocolViolation(`${this.what} asked for export ${JSON.stringify(name)}, which does not exist`);
          const reply = Buffer.alloc(this.noZeroes ? 10 : 134);
          reply.writeBigUInt64BE(BigInt(this.backend.size), 0);
          reply.writeUInt16BE(this.server.flags, 8);
          this.socket.write(reply);
          return true;
        }
        case Opt.ABORT:
          this.optionReply(option, Rep.ACK);
          return false;
        case Opt.LIST:
          if (length !== 0) { this.optionError(option, RepErrorCode.INVALID, 'NBD_OPT_LIST takes no data'); break; }
          this.optionReply(option, Rep.SERVER, Buffer.concat([u32(Buffer.byteLength(this.server.options.name)),
            Buffer.from(this.server.options.name), Buffer.from(this.server.options.description ?? '')]));
          this.optionReply(option, Rep.ACK);
          break;
        case Opt.INFO:
        case Opt.GO:
          if (this.info(option, data) && option === Opt.GO) return true;
          break;
        case Opt.STRUCTURED_REPLY:
          if (length !== 0) { this.optionError(option, RepErrorCode.INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data'); break; }
          this.structured = true;
          this.optionReply(option, Rep.ACK);
          break;
        case Opt.LIST_META_CONTEXT:
        case Opt.SET_META_CONTEXT:
          this.metaContext(option, data);
          break;
        default:
          this.optionError(option, RepErrorCode.UNSUP, `option ${option} is not supported by this server`);
      }
    }
  }

  /** NBD_OPT_INFO and NBD_OPT_GO; true when the export was described and acknowledged. */
  private info(option: number, data: Buffer): boolean {
    const nameLength = data.length >= 4 ? data.readUInt32BE(0) : -1;
    if (nameLength < 0 || 4 + nameLength + 2 > data.length) {
      this.optionError(option, RepErrorCode.INVALID, 'malformed export name');
      return false;
    }
    const count = data.readUInt16BE(4 + nameLength);
    if (data.length !== 4 + nameLength + 2 + 2 * count) {
      this.optionError(option, RepErrorCode.INVALID, 'information request count does not match the option length');
      return false;
    }
    const name = data.subarray(4, 4 + nameLength).toString('utf8');
    if (!this.server.matches(name)) {
      this.optionError(option, RepErrorCode.UNKNOWN, `there is no export ${JSON.stringify(name)}; this server exports ${JSON.stringify(this.server.options.name)}`);
      return false;
    }
    const wanted = new Set<number>();
    for (let i = 0; i < count; i++) wanted.add(data.readUInt16BE(4 + nameLength + 2 + 2 * i));

    const exp = Buffer.alloc(12);
    exp.writeUInt16BE(Info.EXPORT, 0);
    exp.writeBigUInt64BE(BigInt(this.backend.size), 2);
    exp.writeUInt16BE(this.server.flags, 10);
    this.optionReply(option, Rep.INFO, exp);
    // Sent whether asked or not, as the protocol allows: the constraints are the lax defaults.
    const bs = Buffer.alloc(14);
    bs.writeUInt16BE(Info.BLOCK_SIZE, 0);
    bs.writeUInt32BE(MIN_BLOCK, 2);
    bs.writeUInt32BE(PREFERRED_BLOCK, 6);
    bs.writeUInt32BE(MAX_PAYLOAD, 10);
    this.optionReply(option, Rep.INFO, bs);
    if (wanted.has(Info.NAME)) this.optionReply(option, Rep.INFO, Buffer.concat([u16(Info.NAME), Buffer.from(this.server.options.name)]));
    if (wanted.has(Info.DESCRIPTION) && this.server.options.description) {
      this.optionReply(option, Rep.INFO, Buffer.concat([u16(Info.DESCRIPTION), Buffer.from(this.server.options.description)]));
    }
    this.optionReply(option, Rep.ACK);
    return true;
  }

  private metaContext(option: number, data: Buffer): void {
    if (!this.structured) {
      this.optionError(option, RepErrorCode.INVALID, 'meta contexts need structured replies, negotiate NBD_OPT_STRUCTURED_REPLY first');
      return;
    }
    const parsed = parseMetaContextOption(data);
    if (!parsed) {
      this.optionError(option, RepErrorCode.INVALID, 'malformed meta context request');
      return;
    }
    if (!this.server.matches(parsed.name)) {
      this.optionError(option, RepErrorCode.UNKNOWN, `there is no export ${JSON.stringify(parsed.name)}`);
      return;
    }
    const offered = this.backend.blockStatus ? [BASE_ALLOCATION] : [];
    if (option === Opt.LIST_META_CONTEXT) {
      const listed = parsed.queries.length === 0 ? offered
        : offered.filter((c) => parsed.queries.some((q) => q === c || q === 'base:'));
      for (const c of listed) this.optionReply(option, Rep.META_CONTEXT, Buffer.concat([u32(0), Buffer.from(c)]));
    } else {
      this.baseAllocation = offered.includes(BASE_ALLOCATION) && parsed.queries.includes(BASE_ALLOCATION);
      if (this.baseAllocation) this.optionReply(option, Rep.META_CONTEXT, Buffer.concat([u32(BASE_ALLOCATION_ID), Buffer.from(BASE_ALLOCATION)]));
    }
    this.optionReply(option, Rep.ACK);
  }

  private optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const head = Buffer.alloc(20);
    head.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    head.writeUInt32BE(option, 8);
    head.writeUInt32BE(type >>> 0, 12);
    head.writeUInt32BE(data.length, 16);
    this.socket.write(data.length ? Buffer.concat([head, data]) : head);
  }

  private optionError(option: number, error: number, message: string): void {
    this.optionReply(option, (REP_ERROR_BIT | error) >>> 0, Buffer.from(message.slice(0, MAX_MESSAGE)));
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

/** The export name and the queries of NBD_OPT_LIST/SET_META_CONTEXT, or undefined when malformed. */
function parseMetaContextOption(data: Buffer): { name: string; queries: string[] } | undefined {
  if (data.length < 8) return undefined;
  const nameLength = data.readUInt32BE(0);
  let o = 4 + nameLength;
  if (o + 4 > data.length) return undefined;
  const name = data.subarray(4, o).toString('utf8');
  const count = data.readUInt32BE(o);
  o += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (o + 4 > data.length) return undefined;
    const n = data.readUInt32BE(o);
    o += 4;
    if (o + n > data.length) return undefined;
    queries.push(data.subarray(o, o + n).toString('utf8'));
    o += n;
  }
  return o === data.length ? { name, queries } : undefined;
}

function u32(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
