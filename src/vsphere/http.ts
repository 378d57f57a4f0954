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

/** A streamed request body of a known length (a datastore upload), written piece by piece. */
export interface HttpUpload {
  /** Sends `data`; waits while the connection is full. Throws once the server answered early or the connection failed. */
  write(data: Uint8Array): Promise<void>;
  /** Ends the body and waits for the answer (its body kept up to 64 KiB, for messages). */
  end(): Promise<HttpResponse>;
  /** Drops the connection (after a failure elsewhere); end() then rejects. */
  abort(): void;
}

/** An answer that came before the body was complete: the server refused the upload. */
export class EarlyResponseError extends IoError {
  constructor(readonly response: HttpResponse, url: URL) {
    super(`PUT ${url.host}${url.pathname}: the server answered HTTP ${response.status} before the upload was complete`);
  }
}

/** `length` undefined: a body of unknown length, sent chunked (an nfc lease's streamOptimized upload). */
export function httpUpload(agent: https.Agent, req: { url: URL; length: number | undefined; method?: 'PUT' | 'POST'; headers?: Record<string, string>; timeoutMs?: number }): HttpUpload {
  const headers = req.length === undefined ? { ...req.headers } : { ...req.headers, 'content-length': req.length };
  const r = https.request(req.url, { method: req.method ?? 'PUT', agent, headers });
  let ended = false;
  let sent = 0;
  let failure: unknown;
  let early: HttpResponse | undefined;
  const wakers = new Set<() => void>();
  const wake = () => { for (const w of wakers) w(); wakers.clear(); };
  const response = new Promise<HttpResponse>((resolve, reject) => {
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => { if (kept < 65536) { chunks.push(c); kept += c.length; } });
      res.on('end', () => {
        const answer = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
        if (!ended) early = answer;
        wake();
        resolve(answer);
      });
      res.on('error', (err) => { failure ??= err; wake(); reject(err); });
    });
    r.on('error', (err) => {
      const e = connectionError(req.url, err);
      failure ??= e;
      wake();
      reject(e);
    });
  });
  // Rejections are reported by write() and end(); this keeps an unwatched one from crashing the process.
  response.catch(() => {});
  r.setTimeout(req.timeoutMs ?? 120_000, () => r.destroy(new IoError(`PUT ${req.url.host}${req.url.pathname}: no progress within ${Math.round((req.timeoutMs ?? 120_000) / 1000)} s`)));
  r.on('drain', wake);

  const check = () => {
    // Once every byte is handed over, an answer is the answer, even if it came before 'drain' did.
    if (early && sent < (req.length ?? Infinity)) throw new EarlyResponseError(early, req.url);
    if (failure !== undefined) throw failure;
  };
  return {
    async write(data) {
      check();
      sent += data.length;
      if (r.write(data)) return;
      await new Promise<void>((resolve) => wakers.add(resolve));
      check();
    },
    async end() {
      // An answer that came already (the server had the whole body) is the answer.
      if (early) return early;
      if (failure !== undefined) throw failure;
      ended = true;
      r.end();
      return response;
    },
    abort() {
      ended = true;
      r.destroy(new IoError(`PUT ${req.url.host}${req.url.pathname}: aborted`));
    },
  };
}
