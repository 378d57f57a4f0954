/**
 * The server's TLS credentials, in the directory layout nbdkit and qemu-nbd use
 * (`--tls-certificates DIR`): DIR/server-cert.pem and DIR/server-key.pem, and DIR/ca-cert.pem
 * for verifying clients' certificates when `verifyPeer` is set (mutual TLS: only clients
 * holding a certificate that CA signed may connect).
 */
import { promises as fs } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import { type TLSSocket, type TlsOptions, createSecureContext, createServer } from 'node:tls';
import { UsageError, describeCause } from '../errors.js';

export interface ServerTls {
  readonly options: TlsOptions;
  /** Clients must present a certificate signed by DIR/ca-cert.pem. */
  readonly verifyPeer: boolean;
}

async function readPem(dir: string, file: string): Promise<Buffer> {
  const p = path.join(dir, file);
  try {
    return await fs.readFile(p);
  } catch (err) {
    throw new UsageError(`--tls-certificates: reading ${p} failed: ${describeCause(err)}`, { cause: err });
  }
}

export async function loadServerTls(dir: string, verifyPeer: boolean): Promise<ServerTls> {
  const [cert, key] = await Promise.all([readPem(dir, 'server-cert.pem'), readPem(dir, 'server-key.pem')]);
  const ca = verifyPeer ? await readPem(dir, 'ca-cert.pem') : undefined;
  const options: TlsOptions = {
    cert, key, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2', requestCert: verifyPeer, rejectUnauthorized: verifyPeer,
  };
  try {
    createSecureContext(options); // a key that does not match, or a file that is not PEM: refused now, not per client
  } catch (err) {
    throw new UsageError(`--tls-certificates: the certificate and key in ${dir} cannot be used: ${describeCause(err)}`, { cause: err });
  }
  return { options, verifyPeer };
}

/**
 * The server's side of the TLS handshake over an accepted NBD_OPT_STARTTLS. The socket is
 * handed to a tls.Server of its own (never listening), because only a server's connection
 * checks a client certificate against the CA and refuses it when it does not verify.
 */
export function acceptTls(plain: Socket, tls: ServerTls): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const server = createServer(tls.options);
    const closed = () => reject(new Error(tls.verifyPeer ? 'the connection closed during the handshake (was the client certificate refused?)'
      : 'the connection closed during the handshake'));
    plain.once('close', closed);
    server.once('secureConnection', (t: TLSSocket) => { plain.off('close', closed); resolve(t); });
    server.once('tlsClientError', (err) => { plain.off('close', closed); plain.destroy(); reject(err); });
    server.emit('connection', plain);
  });
}

