/**
 * Fixed newstyle negotiation: structured replies, meta contexts, then NBD_OPT_GO with
 * the export's size, flags and block-size constraints.
 */
import type { Socket } from 'node:net';
import { ByteReader } from './byte-reader.js';
import { HandshakeFlag, IHAVEOPT, Info, NBDMAGIC, OPTION_REPLY_MAGIC, Opt, REP_ERROR_BIT, Rep } from './constants.js';
import { NbdProtocolError, NbdServerError, repErrorName } from './errors.js';

/** The largest option reply taken: far above any real one (an export list), so a hostile length cannot make us buffer gigabytes. */
const MAX_OPTION_REPLY = 16 * 1024 * 1024;

export interface ExportInfo {
  readonly size: number;
  readonly flags: number;
  readonly structuredReplies: boolean;
  /** Meta context name → id, for the contexts the server agreed to. */
  readonly metaContexts: ReadonlyMap<string, number>;
  readonly blockSize?: { readonly minimum: number; readonly preferred: number; readonly maximum: number };
}

interface OptionReply { option: number; type: number; data: Buffer }

/** Turns the plain socket into a TLS one after NBD_OPT_STARTTLS was accepted. */
export type StartTls = (plain: Socket) => Promise<Socket>;

export class Negotiator {
  /** The socket and reader after negotiation (TLS ones when STARTTLS was used). */
  socket: Socket;
  reader: ByteReader;

  constructor(socket: Socket, reader: ByteReader, private readonly what: string, private readonly startTls?: StartTls) {
    this.socket = socket;
    this.reader = reader;
  }

  /** NBD_OPT_LIST: the names of the server's exports; the connection is closed after. */
  async list(): Promise<string[]> {
    await this.greet();
    this.send(Opt.LIST, Buffer.alloc(0));
    const names: string[] = [];
    for (;;) {
      const r = await this.reply(Opt.LIST);
      if (r.type === Rep.ACK) break;
      if (r.type & REP_ERROR_BIT) throw new NbdServerError(`${this.what}: listing exports failed`, repErrorName(r.type));
      if (r.type === Rep.SERVER && r.data.length >= 4) {
        const n = r.data.readUInt32BE(0);
        if (4 + n > r.data.length) throw new NbdProtocolError(`${this.what}: malformed export list entry`);
        names.push(r.data.subarray(4, 4 + n).toString('utf8'));
      }
    }
    this.send(Opt.ABORT, Buffer.alloc(0));
    return names;
  }

  async run(exportName: string, metaContexts: readonly string[]): Promise<ExportInfo> {
    await this.greet();
    return this.negotiateRest(exportName, metaContexts);
  }

  private async greet(): Promise<void> {
    const hello = await this.reader.read(18);
    if (hello.readBigUInt64BE(0) !== NBDMAGIC) throw new NbdProtocolError(`${this.what}: not an NBD server (bad greeting)`);
    if (hello.readBigUInt64BE(8) !== IHAVEOPT) throw new NbdProtocolError(`${this.what}: the server speaks the old-style protocol, which vmbkp does not support`);
    const serverFlags = hello.readUInt16BE(16);
    if (!(serverFlags & HandshakeFlag.FIXED_NEWSTYLE)) throw new NbdProtocolError(`${this.what}: the server does not offer fixed newstyle negotiation`);
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(HandshakeFlag.FIXED_NEWSTYLE | (serverFlags & HandshakeFlag.NO_ZEROES));
    this.socket.write(clientFlags);
    if (this.startTls) await this.upgrade(this.startTls);
  }

  private async upgrade(startTls: StartTls): Promise<void> {
    this.send(Opt.STARTTLS, Buffer.alloc(0));
    const r = await this.reply(Opt.STARTTLS);
    if (r.type !== Rep.ACK) throw new NbdServerError(`${this.what}: the server refused TLS`, repErrorName(r.type));
    if (this.reader.detach() !== 0) throw new NbdProtocolError(`${this.what}: the server sent data before the TLS handshake`);
    this.socket = await startTls(this.socket);
    this.reader = new ByteReader(this.socket, this.what);
  }

  private async negotiateRest(exportName: string, metaContexts: readonly string[]): Promise<ExportInfo> {
    const structured = (await this.simpleOption(Opt.STRUCTURED_REPLY, Buffer.alloc(0))) === true;
    const contexts = new Map<string, number>();
    if (structured && metaContexts.length > 0) {
      this.send(Opt.SET_META_CONTEXT, Buffer.concat([lengthPrefixed(exportName), u32(metaContexts.length), ...metaContexts.map(lengthPrefixed)]));
      for (;;) {
        const r = await this.reply(Opt.SET_META_CONTEXT);
        if (r.type === Rep.ACK) break;
        if (r.type & REP_ERROR_BIT) break; // the server cannot: backup reads holes as data
        if (r.type === Rep.META_CONTEXT && r.data.length >= 4) contexts.set(r.data.subarray(4).toString('utf8'), r.data.readUInt32BE(0));
      }
    }

    this.send(Opt.GO, Buffer.concat([lengthPrefixed(exportName), u16(1), u16(Info.BLOCK_SIZE)]));
    let size: number | undefined;
    let flags = 0;
    let blockSize: ExportInfo['blockSize'];
    for (;;) {
      const r = await this.reply(Opt.GO);
      if (r.type & REP_ERROR_BIT) {
        const detail = r.data.toString('utf8');
        throw new NbdServerError(`${this.what}: opening export ${JSON.stringify(exportName)} failed${detail ? ` (${detail})` : ''}`, repErrorName(r.type));
      }
      if (r.type === Rep.ACK) break;
      if (r.type !== Rep.INFO || r.data.length < 2) continue;
      const info = r.data.readUInt16BE(0);
      if (info === Info.EXPORT && r.data.length >= 12) {
        size = Number(r.data.readBigUInt64BE(2));
        flags = r.data.readUInt16BE(10);
      } else if (info === Info.BLOCK_SIZE && r.data.length >= 14) {
        blockSize = { minimum: r.data.readUInt32BE(2), preferred: r.data.readUInt32BE(6), maximum: r.data.readUInt32BE(10) };
      }
    }
    if (size === undefined) throw new NbdProtocolError(`${this.what}: the server finished NBD_OPT_GO without telling the export size`);
    return { size, flags, structuredReplies: structured, metaContexts: contexts, ...(blockSize ? { blockSize } : {}) };
  }

  /** An option answered by ACK (true) or an error (false). */
  private async simpleOption(option: number, data: Buffer): Promise<boolean> {
    this.send(option, data);
    const r = await this.reply(option);
    return r.type === Rep.ACK;
  }

  private send(option: number, data: Buffer): void {
    const head = Buffer.alloc(16);
    head.writeBigUInt64BE(IHAVEOPT, 0);
    head.writeUInt32BE(option, 8);
    head.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([head, data]));
  }

  private async reply(option: number): Promise<OptionReply> {
    const head = await this.reader.read(20);
    if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdProtocolError(`${this.what}: bad option reply magic`);
    const got = head.readUInt32BE(8);
    if (got !== option) throw new NbdProtocolError(`${this.what}: reply to option ${got}, expected ${option}`);
    const length = head.readUInt32BE(16);
    if (length > MAX_OPTION_REPLY) throw new NbdProtocolError(`${this.what}: option reply of ${length} bytes is too large`);
    return { option: got, type: head.readUInt32BE(12), data: await this.reader.read(length) };
  }
}

function u32(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function lengthPrefixed(s: string): Buffer { const b = Buffer.from(s, 'utf8'); return Buffer.concat([u32(b.length), b]); }
