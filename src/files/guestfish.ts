/**
 * A long-lived guestfish: one appliance launch serves a whole command. Requests go to its
 * stdin, each followed by an `echo` of a numbered end marker; its stderr is merged into
 * stdout (by the shell that starts it), so an error line arrives before the marker that
 * ends its request. Every request is prefixed with `-`: without it guestfish exits at the
 * first failing command. A failure is recognised by its `libguestfs: error:` line (or
 * guestfish's own `error:` for a malformed request).
 *
 * guestfish runs in a process group of its own: a Ctrl-C at the terminal reaches vmbkp
 * only, which then stops the appliance itself (and removes what it had half written).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { IoError, NotFoundError } from '../errors.js';
import { guestfsEnvironment } from './environment.js';

/** One disk for the appliance: an NBD export on a Unix socket. */
export interface GuestfishDrive {
  readonly socket: string;
  readonly exportName: string;
}

/** A request libguestfs refused; `message` is its error line without the prefixes. */
export class GuestfishError extends IoError {
  constructor(readonly request: string, readonly reason: string) {
    super(`libguestfs: ${reason}`);
  }
}

/** A guestfish string argument: double-quoted, with its escapes. */
export function quote(s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t') + '"';
}

/** A list argument (lstatnslist), or undefined when a name cannot be written in one safely. */
export function quoteList(items: readonly string[]): string | undefined {
  if (items.some((s) => /['\\\x00-\x1f"]/.test(s))) return undefined;
  return quote(items.map((s) => `'${s}'`).join(' '));
}

/** libguestfs's errors, guestfish's own (bad arguments), and its complaints about optional arguments. */
const ERROR_LINE = /^(?:\*stdin\*:\d+: )?(?:libguestfs: error: |error: )(.*)$|^([\w-]+: unknown optional argument.*)$/;

interface Pending {
  readonly marker: string;
  readonly request: string;
  resolve(out: string): void;
  reject(err: Error): void;
}

export class Guestfish {
  private buffer = '';
  private readonly queue: Pending[] = [];
  private seq = 0;
  private exited: Error | undefined;
  private readonly exit: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => { this.buffer += d; this.drain(); });
    child.stdin!.on('error', () => {}); // a dead guestfish is reported by 'exit'
    this.exit = new Promise((resolve) => {
      child.on('error', (err) => { this.fail(new IoError(`cannot run guestfish (is libguestfs-tools installed?): ${err.message}`)); resolve(); });
      child.on('exit', (code, signal) => {
        const tail = this.buffer.trim().split('\n').slice(-3).join(' ').trim();
        this.fail(new IoError(`guestfish exited (${signal ?? `code ${code}`})${tail ? `: ${tail}` : ''}`));
        resolve();
      });
    });
  }

  /**
   * Starts guestfish with the drives (read-only, raw, over NBD) and launches the appliance.
   * `onWaiting` is called every second until it is up (a launch takes seconds under KVM,
   * 15–25 s under TCG).
   */
  static async launch(drives: readonly GuestfishDrive[], onWaiting?: (elapsedMs: number) => void): Promise<Guestfish> {
    const child = spawn('sh', ['-c', 'exec guestfish 2>&1'], { stdio: ['pipe', 'pipe', 'ignore'], env: guestfsEnvironment(), detached: true });
    const g = new Guestfish(child);
    const t0 = Date.now();
    const timer = onWaiting ? setInterval(() => onWaiting(Date.now() - t0), 1000) : undefined;
    try {
      for (const d of drives) {
        // libguestfs 1.48's add has no exportname: the export's default name ("") is asked for.
        await g.call(`add "" protocol:nbd ${quote(`server:unix:${d.socket}`)} readonly:true format:raw`);
      }
      await g.call('run');
      return g;
    } catch (err) {
      await g.close();
      throw err instanceof GuestfishError ? new IoError(`starting the libguestfs appliance failed: ${err.reason}`) : err;
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  /** Runs one request (a command and its already quoted arguments); resolves to its output. */
  call(request: string): Promise<string> {
    if (this.exited) return Promise.reject(this.exited);
    const marker = `__vmbkp_end_${++this.seq}__`;
    return new Promise((resolve, reject) => {
      this.queue.push({ marker, request, resolve, reject });
      this.child.stdin!.write(`-${request}\n-echo ${marker}\n`);
    });
  }

  /** Like call, with a path in the guest that may not exist: its absence is NotFoundError. */
  async callOn(request: string, path: string, what: string): Promise<string> {
    try {
      return await this.call(request);
    } catch (err) {
      if (err instanceof GuestfishError && /No such file or directory|not found|ENOENT/i.test(err.reason)) {
        throw new NotFoundError(`${what}: ${path} does not exist`);
      }
      if (err instanceof GuestfishError && /Not a directory/i.test(err.reason)) throw new NotFoundError(`${what}: ${path} is not a directory`);
      throw err;
    }
  }

  /** Quits guestfish (the appliance stops with it); kills it when it does not go. Idempotent. */
  async close(): Promise<void> {
    if (!this.exited) {
      this.child.stdin!.end('quit\n');
      const killer = setTimeout(() => this.kill('SIGKILL'), 15_000);
      await this.exit;
      clearTimeout(killer);
    }
  }

  /** Stops guestfish and its appliance now (an interrupted request). */
  async abort(): Promise<void> {
    if (!this.exited) {
      this.kill('SIGTERM');
      const killer = setTimeout(() => this.kill('SIGKILL'), 5_000);
      await this.exit;
      clearTimeout(killer);
    }
  }

  private kill(sig: NodeJS.Signals): void {
    try { process.kill(-this.child.pid!, sig); } catch { /* already gone */ }
  }

  private drain(): void {
    for (;;) {
      const p = this.queue[0];
      if (!p) return;
      const at = this.buffer.startsWith(`${p.marker}\n`) ? 0 : this.buffer.indexOf(`\n${p.marker}\n`);
      if (at < 0) return;
      const text = at === 0 ? '' : this.buffer.slice(0, at + 1);
      this.buffer = this.buffer.slice(at + (at === 0 ? 0 : 1) + p.marker.length + 1);
      this.queue.shift();
      const errorLine = text.split('\n').map((l) => ERROR_LINE.exec(l)).find((m) => m);
      if (errorLine) p.reject(new GuestfishError(p.request, (errorLine[1] ?? errorLine[2]!).trim()));
      else p.resolve(text);
    }
  }

  private fail(err: Error): void {
    this.exited ??= err;
    for (const p of this.queue.splice(0)) p.reject(err);
  }
}

