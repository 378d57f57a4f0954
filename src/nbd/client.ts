/**
 * An NBD client connection: negotiation, then many requests in flight, matched to
 * replies by cookie. A malformed reply, an unknown cookie, a closed connection or a
 * request that gets no answer in time fails every waiting request with a typed error
 * and closes the connection: never a hang, never an unhandled exception.
 */
import { readFile } from 'node:fs/promises';
import { type Socket, connect, isIP } from 'node:net';
import path from 'node:path';
import { checkServerIdentity, connect as tlsConnect } from 'node:tls';
import { IoError, describeCause } from '../errors.js';
import { ByteReader, ReadRegions } from './byte-reader.js';
import { Cmd, REQUEST_MAGIC, ReplyFlag, ReplyType, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, TransmissionFlag } from './constants.js';
import { NbdProtocolError, NbdServerError, errnoName } from './errors.js';
import { type ExportInfo, Negotiator } from './handshake.js';
import type { NbdAddress } from './uri.js';

export const BASE_ALLOCATION = 'base:allocation';

export interface BlockStatusExtent {
  readonly length: number;
  readonly flags: number;
}

export interface ClientOptions {
  /** Meta contexts to ask for ("base:allocation", "qemu:dirty-bitmap:NAME"). */
  readonly metaContexts?: readonly string[];
  /** Requests in flight at once on this connection. */
  readonly maxInFlight?: number;
  /** A request without an answer for this long fails the connection. */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly cmd: number;
  readonly offset: number;
  readonly length: number;
  readonly what: string;
  readonly into?: Buffer;
  readonly contextId?: number;
  readonly extents?: BlockStatusExtent[];
  error?: NbdServerError;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NbdClient {
  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private corked = false;
  private failure: Error | undefined;
  private slots: number;
  private readonly waiting: (() => void)[] = [];

  private constructor(private readonly socket: Socket, private readonly reader: ByteReader, readonly info: ExportInfo,
    readonly description: string, private readonly timeoutMs: number, maxInFlight: number) {
    this.slots = maxInFlight;
    this.nextReply();
  }

  static async connect(address: NbdAddress, options: ClientOptions = {}): Promise<NbdClient> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const { negotiator, result: info, description } = await negotiate(address, timeoutMs, 'negotiation',
      (n) => n.run(address.exportName, options.metaContexts ?? []));
    return new NbdClient(negotiator.socket, negotiator.reader, info, description, timeoutMs, options.maxInFlight ?? 16);
  }

  /** The export names the server lists (NBD_OPT_LIST). */
  static async listExports(address: NbdAddress, timeoutMs = 60_000): Promise<string[]> {
    const { negotiator, result } = await negotiate(address, timeoutMs, 'listing exports', (n) => n.list());
    negotiator.socket.destroy();
    return result;
  }

  get size(): number { return this.info.size; }
  get readOnly(): boolean { return (this.info.flags & TransmissionFlag.READ_ONLY) !== 0; }
  can(flag: number): boolean { return (this.info.flags & flag) !== 0; }

  /** Reads exactly `length` bytes; holes the server reports come back as zeros. */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    await this.request(Cmd.READ, 0, offset, length, undefined, { into: buf });
    return buf;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    await this.request(Cmd.WRITE, 0, offset, data.length, data);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.request(Cmd.WRITE_ZEROES, 0, offset, length);
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.request(Cmd.TRIM, 0, offset, length);
  }

  async flush(): Promise<void> {
    await this.request(Cmd.FLUSH, 0, 0, 0);
  }

  /** Extents of a meta context (e.g. base:allocation) from offset; may cover less than asked. */
  async blockStatus(context: string, offset: number, length: number): Promise<BlockStatusExtent[]> {
    const contextId = this.info.metaContexts.get(context);
    if (contextId === undefined) throw new IoError(`${this.description}: the server did not agree to meta context ${context}`);
    const extents: BlockStatusExtent[] = [];
    await this.request(Cmd.BLOCK_STATUS, 0, offset, length, undefined, { contextId, extents });
    return extents;
  }

  /** Sends NBD_CMD_DISC and closes. */
  async close(): Promise<void> {
    if (!this.failure) {
      const head = header(Cmd.DISC, 0, this.nextCookie++, 0, 0);
      await new Promise<void>((resolve) => this.socket.end(head, () => resolve()));
    }
    this.shutdown(new IoError(`${this.description}: connection closed`));
  }

  private async request(cmd: number, flags: number, offset: number, length: number, data?: Uint8Array,
    extra: { into?: Buffer; contextId?: number; extents?: BlockStatusExtent[] } = {}): Promise<void> {
    if (this.failure) throw this.failure;
    if (offset < 0 || length < 0 || offset + length > this.info.size) {
      throw new IoError(`${this.description}: request of ${length} bytes at offset ${offset} is outside the export (${this.info.size} bytes)`);
    }
    while (this.slots === 0) await new Promise<void>((r) => this.waiting.push(r));
    if (this.failure) throw this.failure;
    this.slots--;
    const cookie = this.nextCookie++;
    const what = `${this.description}: ${cmdName(cmd)} of ${length} bytes at offset ${offset}`;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => this.shutdown(new NbdProtocolError(`${what} got no answer in ${this.timeoutMs} ms`)), this.timeoutMs);
        this.pending.set(cookie, { cmd, offset, length, what, ...extra, resolve: resolve as (v: unknown) => void, reject, timer });
        this.send(header(cmd, flags, cookie, offset, length), data);
      });
    } finally {
      this.slots++;
      this.waiting.shift()?.();
    }
  }

  /**
   * Writes a request. Requests issued in one tick (a segment's extents, all at once) are
   * corked and leave in one writev: a syscall per 28-byte header cost more main-thread
   * time than the replies' data.
   */
  private send(head: Buffer, data?: Uint8Array): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(head);
    if (data) this.socket.write(data);
  }

  private shutdown(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(this.failure); }
    this.pending.clear();
    for (const w of this.waiting.splice(0)) w();
    this.reader.fail(this.failure);
    this.socket.destroy();
  }

  /**
   * Replies are parsed by callbacks the reader calls as soon as their bytes are there, so
   * a reply header and the data after it in one socket read go straight to the caller's
   * buffer: with promises, the data would be buffered (kept or copied) before the client
   * could ask for it. A callback that throws (a malformed reply) ends the connection.
   */
  private readonly fail = (err: unknown): void => {
    this.shutdown(err instanceof IoError ? err : new NbdProtocolError(`${this.description}: ${describeCause(err)}`, { cause: err }));
  };

  private guarded<T>(fn: (v: T) => void): (v: T) => void {
    return (v) => {
      try {
        fn(v);
      } catch (err) {
        this.fail(err);
      }
    };
  }

  private nextReply(): void {
    if (this.failure) return;
    this.reader.readThen(4, this.guarded((m) => {
      const magic = m.readUInt32BE(0);
      if (magic === SIMPLE_REPLY_MAGIC) this.reader.readThen(12, this.guarded((h) => this.simpleReply(h)), this.fail);
      else if (magic === STRUCTURED_REPLY_MAGIC) this.reader.readThen(16, this.guarded((h) => this.structuredReply(h)), this.fail);
      else throw new NbdProtocolError(`${this.description}: reply with bad magic 0x${magic.toString(16)}`);
    }), this.fail);
  }

  private take(cookie: bigint): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw new NbdProtocolError(`${this.description}: reply for unknown cookie ${cookie}`);
    return p;
  }

  private finish(cookie: bigint, p: Pending): void {
    this.pending.delete(cookie);
    clearTimeout(p.timer);
    if (p.error) p.reject(p.error);
    else p.resolve(undefined);
  }

  private simpleReply(h: Buffer): void {
    const error = h.readUInt32BE(0);
    const cookie = h.readBigUInt64BE(4);
    const p = this.take(cookie);
    const done = () => { this.finish(cookie, p); this.nextReply(); };
    if (error !== 0) p.error = new NbdServerError(`${p.what} failed`, errnoName(error));
    else if (p.cmd === Cmd.READ) return this.reader.readIntoThen(p.into!, this.guarded(done), this.fail);
    done();
  }

  private structuredReply(h: Buffer): void {
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const cookie = h.readBigUInt64BE(4);
    const length = h.readUInt32BE(12);
    const p = this.take(cookie);
    if (length > p.length + 64 * 1024 && length > 1024 * 1024) throw new NbdProtocolError(`${p.what}: reply chunk of ${length} bytes is too large`);
    const bad = (why: string) => new NbdProtocolError(`${p.what}: malformed reply (${why})`);
    const done = () => {
      if (flags & ReplyFlag.DONE) this.finish(cookie, p);
      this.nextReply();
    };
    if (type === ReplyType.OFFSET_DATA && p.cmd === Cmd.READ && length >= 8) {
      // Data goes straight from the socket into the caller's buffer.
      this.reader.readThen(8, this.guarded((o) => {
        const at = Number(o.readBigUInt64BE(0)) - p.offset;
        if (at < 0 || at + length - 8 > p.length) throw bad('data outside the request');
        this.reader.readIntoThen(p.into!.subarray(at, at + length - 8), this.guarded(done), this.fail);
      }), this.fail);
      return;
    }
    this.reader.readThen(length, this.guarded((payload) => {
      switch (type) {
        case ReplyType.NONE:
          break;
        case ReplyType.OFFSET_DATA: {
          if (p.cmd !== Cmd.READ || length < 8) throw bad('data chunk');
          const at = Number(payload.readBigUInt64BE(0)) - p.offset;
          if (at < 0 || at + length - 8 > p.length) throw bad('data outside the request');
          payload.copy(p.into!, at, 8);
          break;
        }
        case ReplyType.OFFSET_HOLE: {
          if (p.cmd !== Cmd.READ || length !== 12) throw bad('hole chunk');
          const at = Number(payload.readBigUInt64BE(0)) - p.offset;
          const n = payload.readUInt32BE(8);
          if (at < 0 || at + n > p.length) throw bad('hole outside the request');
          p.into!.fill(0, at, at + n);
          break;
        }
        case ReplyType.BLOCK_STATUS: {
          if (p.cmd !== Cmd.BLOCK_STATUS || length < 12 || (length - 4) % 8 !== 0) throw bad('block status chunk');
          if (payload.readUInt32BE(0) === p.contextId) {
            for (let o = 4; o < length; o += 8) p.extents!.push({ length: payload.readUInt32BE(o), flags: payload.readUInt32BE(o + 4) });
          }
          break;
        }
        case ReplyType.ERROR:
        case ReplyType.ERROR_OFFSET: {
          if (length < 6) throw bad('error chunk');
          const msgLength = payload.readUInt16BE(4);
          const message = payload.subarray(6, 6 + msgLength).toString('utf8');
          p.error ??= new NbdServerError(`${p.what} failed${message ? ` (${message})` : ''}`, errnoName(payload.readUInt32BE(0)));
          break;
        }
        default:
          if (type & 0x8000) p.error ??= new NbdServerError(`${p.what} failed`, `reply type ${type}`);
          // Unknown non-error chunks are ignored, as the protocol asks.
      }
      done();
    }), this.fail);
  }
}

/**
 * Opens a connection and runs one negotiation step (TLS first for nbds://) within the
 * timeout; on failure the connection is closed and the error is typed.
 */
async function negotiate<T>(address: NbdAddress, timeoutMs: number, step: string,
  run: (n: Negotiator) => Promise<T>): Promise<{ negotiator: Negotiator; result: T; description: string }> {
  const description = describeAddress(address);
  const { socket, reader } = await openSocket(address, description, timeoutMs);
  socket.setNoDelay(true);
  const negotiator = new Negotiator(socket, reader, description,
    address.tls ? (plain) => startTls(plain, address, description) : undefined);
  const timer = setTimeout(() => {
    negotiator.reader.fail(new NbdProtocolError(`${description}: ${step} got no answer in ${timeoutMs} ms`));
    negotiator.socket.destroy();
  }, timeoutMs);
  try {
    return { negotiator, result: await run(negotiator), description };
  } catch (err) {
    negotiator.socket.destroy();
    socket.destroy();
    if (err instanceof IoError) throw err;
    throw new NbdProtocolError(`${description}: ${step} failed: ${describeCause(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function describeAddress(address: NbdAddress): string {
  return address.transport === 'unix'
    ? `nbd+unix:///${address.exportName}?socket=${address.socket}`
    : `nbd://${address.host}:${address.port}/${address.exportName}`;
}

/** Socket reads land in one reused buffer and are fed to the reader (plain connections only: TLS needs the stream). */
const READ_BUFFER = 1024 * 1024;

async function openSocket(address: NbdAddress, description: string, timeoutMs: number): Promise<{ socket: Socket; reader: ByteReader }> {
  let reader: ByteReader | undefined;
  const regions = address.tls ? undefined : new ReadRegions(READ_BUFFER);
  const onread = regions ? {
    buffer: () => regions.next(),
    callback: (n: number, buf: Uint8Array) => {
      if (reader!.feed(Buffer.from(buf.buffer, buf.byteOffset, n))) regions.keep(n);
      return true;
    },
  } : undefined;
  const socket = await new Promise<Socket>((resolve, reject) => {
    const where = address.transport === 'unix' ? { path: address.socket } : { host: address.host, port: address.port };
    const s = connect({ ...where, ...(onread ? { onread } : {}) });
    const timer = setTimeout(() => { s.destroy(); reject(new IoError(`connecting to ${description} failed: no answer in ${timeoutMs} ms`)); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', (e) => { clearTimeout(timer); reject(new IoError(`connecting to ${description} failed: ${describeCause(e)}`, { cause: e })); });
  });
  reader = new ByteReader(socket, description);
  return { socket, reader };
}

/**
 * TLS over an accepted NBD_OPT_STARTTLS: trusts DIR/ca-cert.pem from tls-certificates=DIR,
 * else the system CAs, and presents DIR/client-cert.pem and DIR/client-key.pem when DIR has
 * them (libnbd's layout), for servers that require a client certificate.
 */
async function startTls(plain: Socket, address: NbdAddress, description: string): Promise<Socket> {
  const o = address.tlsOptions ?? { verifyPeer: true };
  let ca: Buffer | undefined;
  let identity: { cert: Buffer; key: Buffer } | undefined;
  if (o.certificates) {
    const dir = o.certificates;
    const read = async (file: string, optional: boolean): Promise<Buffer | undefined> => {
      try {
        return await readFile(path.join(dir, file));
      } catch (err) {
        if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new IoError(`${description}: reading ${path.join(dir, file)} failed: ${describeCause(err)}`, { cause: err });
      }
    };
    ca = await read('ca-cert.pem', false);
    const cert = await read('client-cert.pem', true);
    if (cert) identity = { cert, key: (await read('client-key.pem', false))! };
  }
  const servername = o.hostname ?? (address.transport === 'tcp' ? address.host : 'localhost');
  return new Promise<Socket>((resolve, reject) => {
    const t = tlsConnect({ socket: plain, ...(ca ? { ca } : {}), ...identity, ...(isIP(servername) ? {} : { servername }), rejectUnauthorized: o.verifyPeer,
      checkServerIdentity: (_host, cert) => checkServerIdentity(servername, cert) });
    t.once('secureConnect', () => resolve(t));
    t.once('error', (e) => reject(new IoError(`${description}: TLS handshake failed: ${describeCause(e)}`, { cause: e })));
  });
}

function header(cmd: number, flags: number, cookie: bigint, offset: number, length: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(cmd, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

function cmdName(cmd: number): string {
  return ['read', 'write', 'disconnect', 'flush', 'trim', 'cache', 'write-zeroes', 'block-status'][cmd] ?? `command ${cmd}`;
}
