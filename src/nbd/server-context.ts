/**
 * The server as its connections see it: the backend, the options, the export flags, the
 * shared reply buffers. The connection and its negotiation depend on this, not on the
 * NbdServer class, so that server.ts can create connections without an import cycle.
 */
import type { ExportBackend } from './export-backend.js';
import type { ReplyBuffers } from './reply-buffers.js';
import type { ServerTls } from './server-tls.js';

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

export interface ServerContext {
  readonly backend: ExportBackend;
  readonly options: NbdServerOptions;
  /** Transmission flags of the export (TransmissionFlag bits). */
  readonly flags: number;
  /** Read reply buffers shared by the connections. */
  readonly buffers: ReplyBuffers;
  warn(message: string): void;
  /** Whether a client's export name means this export (its name or the default ""). */
  matches(name: string): boolean;
}
