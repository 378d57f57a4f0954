/**
 * A helper server vmbkp starts for one disk — qemu-nbd for a qcow2 image, nbdkit for a
 * VMware disk — and talks NBD to over a private Unix socket. Starting waits until the
 * socket accepts a connection (a socket file exists before its server listens); a helper
 * that exits first fails the start with its exit status and the tail of its stderr.
 * Stopping is SIGTERM, then SIGKILL after a grace period, and always waits for the exit:
 * whatever the helper holds open (a VM's disk through VDDK) is released when stop returns.
 *
 * Secrets never go in the arguments (other users can read them in /proc): callers pass
 * them in files or the environment.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, IoError } from '../errors.js';

/** How long a helper may take to accept connections, unless the caller knows better. */
export const READY_TIMEOUT_MS = 30_000;
/** How often the socket is tried while the helper starts. */
const READY_POLL_MS = 50;
/** How long a helper has to exit after SIGTERM before it gets SIGKILL. */
export const STOP_GRACE_MS = 5_000;
/** How much of a helper's stderr is kept for messages: its last characters. */
export const STDERR_TAIL_CHARS = 4096;

/** Whether something listens on a Unix socket. */
export function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface HelperOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** The helper's environment (default: vmbkp's). */
  readonly env?: NodeJS.ProcessEnv;
  /** The Unix socket the helper listens on once it serves. */
  readonly socket: string;
  /** Names the helper in messages: "qemu-nbd for /srv/web01.qcow2". */
  readonly what: string;
  /** What to tell the user when the command is not installed (it becomes an InputError). */
  readonly notInstalled: string;
  readonly readyTimeoutMs?: number;
  readonly stopGraceMs?: number;
}

/** How a helper ended: an exit code, or the signal that ended it. */
export interface HelperExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function describeExit(e: HelperExit): string {
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

/** A helper exited before it served. `stderr` is the tail of what it wrote there. */
export class HelperExitedError extends IoError {
  constructor(what: string, readonly exit: HelperExit, readonly stderr: string) {
    const said = stderr.trim().split('\n').map((l) => l.trim()).filter(Boolean).join(' | ');
    super(`${what} stopped before it served (${describeExit(exit)})${said ? `: ${said}` : ''}`);
  }
}

export class HelperProcess {
  private tail = '';
  private ended: HelperExit | undefined;
  private spawnError: NodeJS.ErrnoException | undefined;
  private readonly exited: Promise<HelperExit>;
  private stopping: Promise<HelperExit> | undefined;

  private constructor(private readonly child: ChildProcess, private readonly opts: HelperOptions) {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.keep(s); });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => { this.ended = { code, signal }; resolve(this.ended); });
      // A helper that could not be started emits 'error' and never 'exit'.
      child.on('error', (err: NodeJS.ErrnoException) => {
        this.spawnError = err;
        if (child.pid === undefined) { this.ended = { code: null, signal: null }; resolve(this.ended); }
      });
    });
  }

  /** Starts a helper and waits until its socket accepts a connection; on failure nothing is left running. */
  static async start(opts: HelperOptions): Promise<HelperProcess> {
    const child = spawn(opts.command, [...opts.args], { stdio: ['ignore', 'ignore', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
    const helper = new HelperProcess(child, opts);
    try {
      await helper.waitUntilReady();
      return helper;
    } catch (err) {
      await helper.stop();
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Keeps the last STDERR_TAIL_CHARS (about) of the helper's stderr, from a line start where it was cut. */
  private keep(s: string): void {
    this.tail += s;
    if (this.tail.length > STDERR_TAIL_CHARS) {
      const cut = this.tail.slice(-STDERR_TAIL_CHARS);
      const nl = cut.indexOf('\n');
      this.tail = nl >= 0 && nl < cut.length - 1 ? cut.slice(nl + 1) : cut;
    }
  }

  private async waitUntilReady(): Promise<void> {
    const { what } = this.opts;
    const timeoutMs = this.opts.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.spawnError) {
        const err = this.spawnError;
        throw err.code === 'ENOENT' ? new InputError(this.opts.notInstalled, { cause: err })
          : new IoError(`starting ${what} failed: ${err.message}`, { cause: err });
      }
      if (this.ended) throw new HelperExitedError(what, this.ended, this.tail);
      if (await canConnect(this.opts.socket)) {
        // It may have exited just after accepting (a server that serves one connection).
        if (this.ended) throw new HelperExitedError(what, this.ended, this.tail);
        return;
      }
      if (Date.now() >= deadline) {
        throw new IoError(`${what} did not start serving within ${Math.round(timeoutMs / 1000)} s`);
      }
      await sleep(READY_POLL_MS);
    }
  }

  /** SIGTERM, SIGKILL after the grace period, and the exit awaited. Safe to call more than once. */
  stop(): Promise<HelperExit> {
    this.stopping ??= (async () => {
      if (this.ended) return this.ended;
      this.child.kill('SIGTERM');
      const kill = setTimeout(() => this.child.kill('SIGKILL'), this.opts.stopGraceMs ?? STOP_GRACE_MS);
      try {
        return await this.exited;
      } finally {
        clearTimeout(kill);
      }
    })();
    return this.stopping;
  }
}
