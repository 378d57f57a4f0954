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
import type { ExportBackend } from './export-backend.js';
import type { ListenAddress } from './listen-address.js';
import { ReplyBuffers } from './reply-buffers.js';
import { Connection } from './server-connection.js';
import type { NbdServerOptions, ServerContext } from './server-context.js';

export type { ExportBackend, ExportExtent } from './export-backend.js';
export type { NbdServerOptions } from './server-context.js';
export { type ListenAddress, exportUri, parseListenAddress } from './listen-address.js';
export { MAX_PAYLOAD } from './server-shared.js';
export { type ServerTls, loadServerTls } from './server-tls.js';

export class NbdServer implements ServerContext {
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
