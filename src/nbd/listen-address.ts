/** Where an NBD server listens (--listen), and the URI a client uses to reach its export there. */
import { UsageError } from '../errors.js';

export type ListenAddress =
  | { readonly transport: 'unix'; readonly path: string }
  | { readonly transport: 'tcp'; readonly host: string; readonly port: number };

/** unix:PATH or tcp:HOST:PORT (HOST may be [IPv6]); PORT 0 picks a free port. */
export function parseListenAddress(s: string): ListenAddress {
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    if (!p) throw new UsageError(`--listen ${JSON.stringify(s)}: give unix:PATH`);
    return { transport: 'unix', path: p };
  }
  const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(s);
  if (m && Number(m[2]) <= 65535) return { transport: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new UsageError(`--listen ${JSON.stringify(s)} is not an address: give unix:PATH or tcp:HOST:PORT`);
}

/** The NBD URI a client uses to reach `name` at `address` (port as bound); nbds when TLS is required. */
export function exportUri(address: ListenAddress, name: string, tls = false): string {
  const e = encodeURIComponent(name);
  const scheme = tls ? 'nbds' : 'nbd';
  if (address.transport === 'unix') return `${scheme}+unix:///${e}?socket=${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${scheme}://${host}:${address.port}/${e}`;
}
