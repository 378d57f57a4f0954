/**
 * How vmbkp trusts a vCenter's certificate: the system CAs (default), a private CA (the
 * PEM certificates of a CA file, instead of the system's), a pinned SHA-256 or SHA-1
 * thumbprint, or nothing at all (only with --insecure). A pinned
 * connection is handed to HTTP only after the thumbprint matched, so not one byte of
 * a request (a Login carries the password) reaches a server that is not the pinned one.
 */
import https from 'node:https';
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { AuthError, InputError } from '../errors.js';

export type TlsPolicy =
  | { readonly kind: 'system' }
  | { readonly kind: 'ca'; readonly ca: string; readonly caFile: string }
  | { readonly kind: 'pinned'; readonly thumbprint: string }
  | { readonly kind: 'insecure' };

/** "aa:bb:…" or "AABB…", 20 bytes (SHA-1) or 32 (SHA-256) → "AA:BB:…", the form Node reports. */
export function normalizeThumbprint(input: string): string {
  const hex = input.replace(/[:\s-]/g, '').toUpperCase();
  if (!/^[0-9A-F]+$/.test(hex) || (hex.length !== 40 && hex.length !== 64)) {
    throw new InputError(`thumbprint ${JSON.stringify(input)} is invalid: give the certificate's SHA-256 or SHA-1 as hex (colons optional)`);
  }
  return hex.match(/../g)!.join(':');
}

export function thumbprintMatches(cert: tls.PeerCertificate, pinned: string): boolean {
  return pinned.length === 95 ? cert.fingerprint256 === pinned : cert.fingerprint === pinned;
}

function notPinned(where: string, cert: tls.PeerCertificate, pinned: string): AuthError {
  const actual = pinned.length === 95 ? cert.fingerprint256 : cert.fingerprint;
  return new AuthError(`the certificate of ${where} has thumbprint ${actual}, not the pinned ${pinned}`);
}

class PinnedAgent extends https.Agent {
  constructor(private readonly pinned: string) {
    super({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });
  }

  override createConnection(options: tls.ConnectionOptions, onCreate: (err: Error | null, socket?: Duplex) => void): Duplex | undefined {
    const socket = tls.connect({ ...options, rejectUnauthorized: false });
    const onError = (err: Error) => { socket.removeListener('secureConnect', onSecure); onCreate(err); };
    const onSecure = () => {
      socket.removeListener('error', onError);
      const cert = socket.getPeerCertificate();
      if (!thumbprintMatches(cert, this.pinned)) {
        socket.destroy();
        onCreate(notPinned(`${options.host ?? 'the server'}${options.port ? `:${options.port}` : ''}`, cert, this.pinned));
        return;
      }
      onCreate(null, socket);
    };
    socket.once('error', onError);
    socket.once('secureConnect', onSecure);
    return undefined;
  }
}

export function agentFor(policy: TlsPolicy): https.Agent {
  switch (policy.kind) {
    case 'system': return new https.Agent({ keepAlive: true, maxSockets: 16 });
    case 'ca': return new https.Agent({ keepAlive: true, maxSockets: 16, ca: policy.ca });
    case 'insecure': return new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });
    case 'pinned': return new PinnedAgent(normalizeThumbprint(policy.thumbprint));
  }
}

/**
 * The SHA-1 thumbprint of the server's certificate (what VDDK wants), checked against
 * the same policy the API session uses.
 */
export function peerThumbprintSha1(url: URL, policy: TlsPolicy): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: url.hostname, port: Number(url.port || 443), ...(isIP(url.hostname) ? {} : { servername: url.hostname }),
      rejectUnauthorized: policy.kind === 'system' || policy.kind === 'ca', ...(policy.kind === 'ca' ? { ca: policy.ca } : {}),
    });
    socket.setTimeout(30_000, () => socket.destroy(new Error('no TLS handshake within 30 s')));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      if (policy.kind === 'pinned' && !thumbprintMatches(cert, normalizeThumbprint(policy.thumbprint))) {
        reject(notPinned(url.host, cert, normalizeThumbprint(policy.thumbprint)));
      } else {
        resolve(cert.fingerprint);
      }
    });
  });
}
