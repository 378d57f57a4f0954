/** NBD URIs (the NBD URI standard): nbd://host[:port]/export and nbd+unix:///export?socket=PATH. */
import { InputError } from '../errors.js';

/** TLS settings from nbds:// URIs: tls-certificates=DIR (its ca-cert.pem is trusted), tls-hostname, tls-verify-peer. */
export interface NbdTls {
  readonly certificates?: string;
  readonly hostname?: string;
  readonly verifyPeer: boolean;
}

interface Common { readonly exportName: string; readonly tls: boolean; readonly tlsOptions?: NbdTls }
export type NbdAddress =
  | (Common & { readonly transport: 'tcp'; readonly host: string; readonly port: number })
  | (Common & { readonly transport: 'unix'; readonly socket: string });

export const DEFAULT_PORT = 10809;

export function isNbdUri(uri: string): boolean {
  return /^nbds?(\+(tcp|unix))?:\/\//.test(uri);
}

export function parseNbdUri(uri: string): NbdAddress {
  const m = /^(nbds?)(?:\+(tcp|unix))?:/.exec(uri);
  if (!m) throw new InputError(`${JSON.stringify(uri)} is not an NBD URI (nbd://host[:port]/export or nbd+unix:///export?socket=PATH)`);
  let url: URL;
  try {
    url = new URL(uri.replace(/^[^:]+:/, 'x-nbd:')); // a non-special scheme: an empty host stays empty
  } catch (err) {
    throw new InputError(`NBD URI ${JSON.stringify(uri)} is malformed`, { cause: err });
  }
  const tls = m[1] === 'nbds';
  const exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const q = url.searchParams;
  const tlsOptions: NbdTls | undefined = tls ? {
    ...(q.get('tls-certificates') ? { certificates: q.get('tls-certificates')! } : {}),
    ...(q.get('tls-hostname') ? { hostname: q.get('tls-hostname')! } : {}),
    verifyPeer: q.get('tls-verify-peer') !== 'false',
  } : undefined;
  if (m[2] === 'unix') {
    const socket = url.searchParams.get('socket');
    if (!socket) throw new InputError(`NBD URI ${JSON.stringify(uri)} needs ?socket=PATH`);
    if (url.host) throw new InputError(`NBD URI ${JSON.stringify(uri)}: a Unix socket URI has no host (nbd+unix:///export?socket=PATH)`);
    return { transport: 'unix', socket, exportName, tls, ...(tlsOptions ? { tlsOptions } : {}) };
  }
  if (!url.hostname) throw new InputError(`NBD URI ${JSON.stringify(uri)} has no host`);
  const port = url.port ? Number(url.port) : DEFAULT_PORT;
  return { transport: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port, exportName, tls, ...(tlsOptions ? { tlsOptions } : {}) };
}
