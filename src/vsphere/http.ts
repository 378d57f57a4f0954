/**
 * One HTTPS exchange with a vCenter or ESXi host: SOAP posts and datastore file
 * transfers share it. Bodies are buffered (SOAP) or streamed into a caller's buffer
 * (disk reads). Connection failures become errors that name the host and the cause.
 */
import http from 'node:http';
import https from 'node:https';
import { AuthError, IoError, VmbkpError, describeCause } from '../errors.js';

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface HttpRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly url: URL;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** For GET: read the body into this buffer (it must be large enough); the response's body is then a view of it. */
  readonly into?: Buffer;
  readonly timeoutMs?: number;
}

const TLS_ERRORS = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

function connectionError(url: URL, err: unknown): VmbkpError {
  if (err instanceof VmbkpError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && TLS_ERRORS.has(code)) {
    return new AuthError(`the certificate of ${url.host} is not trusted (${code}): pin it with --thumbprint, or use --insecure`, { cause: err });
  }
  return new IoError(`connecting to ${url.host} failed: ${describeCause(err)}`, { cause: err });
}

export function httpRequest(agent: https.Agent, req: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
    const r = https.request(req.url, { method: req.method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      let filled = 0;
      const into = req.into && res.statusCode !== undefined && res.statusCode < 300 ? req.into : undefined;
      res.on('data', (chunk: Buffer) => {
        if (into) {
          if (filled + chunk.length > into.length) {
            res.destroy(new IoError(`GET ${req.url.pathname} returned more than the ${into.length} bytes asked for`));
            return;
          }
          chunk.copy(into, filled);
          filled += chunk.length;
        } else {
          chunks.push(chunk);
        }
      });
      res.on('end', () => {
        if (!res.complete) {
          reject(new IoError(`${req.method} ${req.url.host}${req.url.pathname}: the connection closed before the response was complete`));
          return;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: into ? into.subarray(0, filled) : Buffer.concat(chunks) });
      });
      res.on('error', (err) => reject(err instanceof VmbkpError ? err
        : new IoError(`${req.method} ${req.url.host}${req.url.pathname}: the response broke off: ${describeCause(err)}`, { cause: err })));
      res.on('aborted', () => reject(new IoError(`${req.method} ${req.url.host}${req.url.pathname}: the connection closed before the response was complete`)));
    });
    r.setTimeout(req.timeoutMs ?? 120_000, () => r.destroy(new IoError(`${req.method} ${req.url.host}${req.url.pathname}: no answer within ${Math.round((req.timeoutMs ?? 120_000) / 1000)} s`)));
    r.on('error', (err) => reject(connectionError(req.url, err)));
    r.end(req.body);
  });
}
