/**
 * The backup server as a test fixture: `vmbkp server --config F` as a child process (the
 * real CLI), its URL and certificate fingerprint from what it prints, an HTTPS client that
 * trusts exactly the server's certificate, and a webhook receiver (a real HTTP server).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CLI, vmbkp } from './helpers.js';

export interface StartedServer {
  readonly url: string;
  readonly fingerprint: string;
  readonly child: ChildProcess;
  /** What the server wrote so far. */
  output(): { stdout: string; stderr: string };
  /** SIGTERM (a clean stop), or SIGKILL; resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServer(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<StartedServer> {
  const child = spawn(process.execPath, [CLI, 'server', '--config', configFile], { env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = await new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      stdout += d;
      const url = /listening on (https:\/\/\S+)/.exec(stdout)?.[1];
      const fingerprint = /fingerprint ([0-9A-F:]{95})/.exec(stdout)?.[1];
      if (url && fingerprint) resolve({ url, fingerprint });
    });
    child.once('exit', (code) => reject(new Error(`vmbkp server exited (${code}) before listening:\n${stderr}`)));
  });
  return {
    ...started, child,
    output: () => ({ stdout, stderr }),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
  json<T = unknown>(): T;
}

/** An HTTPS client trusting only `ca` (the server's certificate): nothing is skipped in verification. */
export class ApiClient {
  cookie: string | undefined;
  csrf: string | undefined;
  constructor(readonly url: string, private readonly ca: string, private readonly token?: string) {}

  request(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const h: Record<string, string> = { ...headers };
    if (data) h['content-type'] = 'application/json';
    if (this.token) h['authorization'] = `Bearer ${this.token}`;
    if (this.cookie) h['cookie'] = this.cookie;
    return new Promise((resolve, reject) => {
      const req = request(new URL(p, this.url), { method, headers: h, ca: this.ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const setCookie = res.headers['set-cookie']?.find((c) => c.startsWith('vmbkp_session='));
          if (setCookie) this.cookie = setCookie.split(';')[0];
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
        });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Reads a Server-Sent Events stream until the server ends it: each event's name and JSON data. */
  events(p: string): Promise<{ event: string; data: unknown }[]> {
    const h: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token) h['authorization'] = `Bearer ${this.token}`;
    if (this.cookie) h['cookie'] = this.cookie;
    return new Promise((resolve, reject) => {
      const req = request(new URL(p, this.url), { headers: h, ca: this.ca }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => resolve(text.split('\n\n').filter((b) => b.trim()).map((block) => {
          const field = (k: string) => block.split('\n').filter((l) => l.startsWith(`${k}:`)).map((l) => l.slice(k.length + 1).trimStart()).join('\n');
          return { event: field('event'), data: JSON.parse(field('data')) as unknown };
        })));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** Logs in with a session cookie; remembers the cookie and the CSRF token. */
  async login(user: string, password: string): Promise<ApiResponse> {
    const r = await this.request('POST', '/api/v1/session', { user, password });
    if (r.status === 200) this.csrf = r.json<{ csrfToken: string }>().csrfToken;
    return r;
  }

  /** A mutating request with the session's CSRF token, as the dashboard sends it. */
  send(method: string, p: string, body?: unknown): Promise<ApiResponse> {
    return this.request(method, p, body, this.csrf ? { 'x-csrf-token': this.csrf } : {});
  }
}

/** Adds a user through the CLI, the password in a file. */
export async function addUser(configFile: string, dir: string, name: string, role: string, password: string): Promise<void> {
  const file = path.join(dir, `${name}.password`);
  await fs.writeFile(file, `${password}\n`, { mode: 0o600 });
  const r = await vmbkp(['server', 'user', 'add', name, '--role', role, '--password-file', file, '--config', configFile]);
  if (r.code !== 0) throw new Error(`vmbkp server user add ${name} failed: ${r.stderr}`);
}

export async function createToken(configFile: string, user: string): Promise<string> {
  const r = await vmbkp(['server', 'token', 'create', `${user}-script`, '--user', user, '--config', configFile, '--json']);
  if (r.code !== 0) throw new Error(`vmbkp server token create failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { token: string }).token;
}

/** A real HTTP server taking webhook POSTs; `next(pred)` resolves with the first body (JSON) that matches. */
export async function startWebhook(): Promise<{ url: string; received: unknown[]; next(pred: (b: unknown) => boolean): Promise<unknown>; stop(): Promise<void> }> {
  const received: unknown[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        received.push({ unparsable: Buffer.concat(chunks).toString('utf8'), contentType: req.headers['content-type'] });
      }
      res.end('ok');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`, received,
    next(pred) {
      return new Promise((resolve) => {
        const check = () => {
          const hit = received.find(pred);
          if (hit !== undefined) resolve(hit);
          else waiters.push(check);
        };
        check();
      });
    },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Polls `fn` until it returns a value (not undefined); no time limit of its own (the test runner's applies). */
export async function until<T>(fn: () => Promise<T | undefined>, pauseMs = 100): Promise<T> {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}
