/** NBD URIs (the NBD URI standard): nbd://host[:port]/export and nbd+unix:///export?socket=PATH. */
import { InputError } from '../errors.js';

export type NbdAddress =
  | { readonly transport: 'tcp'; readonly host: string; readonly port: number; readonly exportName: string; readonly tls: boolean }
  | { readonly transport: 'unix'; readonly socket: string; readonly exportName: string; readonly tls: boolean };

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
  if (m[2] === 'unix') {
    const socket = url.searchParams.get('socket');
    if (!socket) throw new InputError(`NBD URI ${JSON.stringify(uri)} needs ?socket=PATH`);
    if (url.host) throw new InputError(`NBD URI ${JSON.stringify(uri)}: a Unix socket URI has no host (nbd+unix:///export?socket=PATH)`);
    return { transport: 'unix', socket, exportName, tls };
  }
  if (!url.hostname) throw new InputError(`NBD URI ${JSON.stringify(uri)} has no host`);
  const port = url.port ? Number(url.port) : DEFAULT_PORT;
  return { transport: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port, exportName, tls };
}
