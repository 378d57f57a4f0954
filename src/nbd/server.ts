/**
 * An NBD server (fixed newstyle) for one export. It knows nothing of what it serves: an
 * ExportBackend gives the size and does the reads (and writes, when writable).
 *
 * This module listens and accepts; each client is a Connection (server-connection.ts),
 * which negotiates (server-negotiation.ts) and then serves requests.
 */
import { promises as fs } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { IoError, describeCause } from '../errors.js';
import { TransmissionFlag } from './constants.js';
import type { ListenAddress } from './listen-address.js';
import { ReplyBuffers } from './reply-buffers.js';
import { Connection } from './server-connection.js';
import type { ServerTls } from './server-tls.js';

export { type ListenAddress, exportUri, parseListenAddress } from './listen-address.js';
export { MAX_PAYLOAD } from './server-shared.js';
export { type ServerTls, loadServerTls } from './server-tls.js';

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
  /** TLS credentials: with them, clients must upgrade with NBD_OPT_STARTTLS before anything else. */
  readonly tls?: ServerTls;
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
