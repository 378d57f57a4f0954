/**
 * The server's side of fixed newstyle negotiation: NBD_OPT_EXPORT_NAME, NBD_OPT_INFO /
 * NBD_OPT_GO (NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, NBD_INFO_DESCRIPTION),
 * NBD_OPT_LIST, NBD_OPT_ABORT, NBD_OPT_STRUCTURED_REPLY and, when the backend reports
 * allocation, the base:allocation meta context. Any other option is answered
 * NBD_REP_ERR_UNSUP.
 *
 * A server with TLS credentials requires TLS (nbdkit's --tls=require): until the client
 * has upgraded with NBD_OPT_STARTTLS, every option but NBD_OPT_ABORT is answered
 * NBD_REP_ERR_TLS_REQD, and NBD_OPT_EXPORT_NAME disconnects.
 */
import type { Socket } from 'node:net';
import { describeCause } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import { HandshakeFlag, IHAVEOPT, Info, NBDMAGIC, OPTION_REPLY_MAGIC, Opt, REP_ERROR_BIT, Rep, RepErrorCode } from './constants.js';
import type { ExportBackend } from './export-backend.js';
import type { ServerContext } from './server-context.js';
import { BASE_ALLOCATION_ID, MAX_MESSAGE, MAX_PAYLOAD, ProtocolViolation } from './server-shared.js';
import { acceptTls } from './server-tls.js';

/** A client's socket and its reader: both replaced by TLS ones when the client upgrades. */
export interface Link {
  socket: Socket;
  reader: ByteReader;
}

const MIN_BLOCK = 1;
const PREFERRED_BLOCK = 4096;
/** Option data beyond this is not read: the client is disconnected. */
const MAX_OPTION_DATA = 64 * 1024;
const BASE_ALLOCATION = 'base:allocation';

/** One client's negotiation; what was agreed is left in `structured` and `baseAllocation`. */
export class Negotiation {
  /** NBD_OPT_STRUCTURED_REPLY was accepted. */
  structured = false;
  /** base:allocation was set as the meta context. */
  baseAllocation = false;
  /** The client upgraded to TLS. */
  private secured = false;
  private noZeroes = false;

  constructor(
    private readonly server: ServerContext,
    private readonly link: Link,
    private readonly what: string,
    /** True once the server is stopping: every option but NBD_OPT_ABORT is refused then. */
    private readonly stopping: () => boolean,
  ) {}

  private get backend(): ExportBackend { return this.server.backend; }
  private get socket(): Socket { return this.link.socket; }
  private get reader(): ByteReader { return this.link.reader; }

  /** True when the client chose the export (transmission follows), false when it went away. */
  async negotiate(): Promise<boolean> {
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
      if (this.stopping() && option !== Opt.ABORT) {
        this.optionError(option, RepErrorCode.SHUTDOWN, 'the server is stopping');
        continue;
      }
      if (option === Opt.STARTTLS) {
        await this.startTls(length);
        continue;
      }
      if (this.server.options.tls && !this.secured && option !== Opt.ABORT) {
        // This option cannot be answered with an error: the protocol says to disconnect.
        if (option === Opt.EXPORT_NAME) throw new ProtocolViolation(`${this.what} asked for an export without TLS, which this server requires`);
        this.optionError(option, RepErrorCode.TLS_REQD, 'this server requires TLS: negotiate NBD_OPT_STARTTLS first');
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

  /** NBD_OPT_STARTTLS: acknowledged, then the TLS handshake; the link becomes the TLS socket. */
  private async startTls(length: number): Promise<void> {
    const tls = this.server.options.tls;
    if (!tls) return this.optionError(Opt.STARTTLS, RepErrorCode.UNSUP, 'this server does not offer TLS');
    if (this.secured) return this.optionError(Opt.STARTTLS, RepErrorCode.INVALID, 'TLS is already negotiated');
    if (length !== 0) return this.optionError(Opt.STARTTLS, RepErrorCode.INVALID, 'NBD_OPT_STARTTLS takes no data');
    this.optionReply(Opt.STARTTLS, Rep.ACK);
    if (this.reader.detach() !== 0) throw new ProtocolViolation(`${this.what} sent data before the TLS handshake`);
    const plain = this.socket;
    let secure: Socket;
    try {
      secure = await acceptTls(plain, tls);
    } catch (err) {
      plain.destroy();
      throw new ProtocolViolation(`${this.what}: TLS handshake failed: ${describeCause(err)}`);
    }
    this.link.socket = secure;
    this.link.reader = new ByteReader(secure, this.what);
    this.secured = true;
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
