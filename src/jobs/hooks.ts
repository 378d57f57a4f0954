/**
 * A recipe's pre and post hooks: commands run around each VM's backup, told about the VM
 * (and, after, its result) through VMBKP_* environment variables. A string runs through
 * /bin/sh; a list runs as a program and its arguments, without a shell. Output is kept
 * (its tail) for the report, never mixed into vmbkp's own.
 */
import { spawn } from 'node:child_process';
import { HookError, describeCause } from '../errors.js';

export type HookCommand = string | readonly string[];

export interface HookRun {
  readonly phase: 'pre' | 'post';
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
  /** It ran past its time limit and was stopped. */
  readonly timedOut?: boolean;
  /** The last few KiB of its stdout and stderr, interleaved. */
  readonly output: string;
}

const OUTPUT_TAIL = 4096;

export function hookText(h: HookCommand): string {
  return typeof h === 'string' ? h : h.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/**
 * Runs one hook to completion; a spawn failure becomes a run with exit code null.
 * `withhold` names variables of vmbkp's environment the hook must not get (the one holding
 * the vCenter password). With
 * `timeoutMs`, a hook still running then is stopped: SIGTERM to its process group (a
 * shell's children too), SIGKILL 5 s later.
 */
export function runHook(phase: 'pre' | 'post', hook: HookCommand, env: Readonly<Record<string, string>>, timeoutMs?: number,
  withhold: readonly string[] = []): Promise<HookRun> {
  const [file, args] = typeof hook === 'string' ? ['/bin/sh', ['-c', hook]] : [hook[0]!, hook.slice(1)];
  const t0 = performance.now();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const keep = (d: Buffer) => { output = (output + d.toString('utf8')).slice(-OUTPUT_TAIL); };
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const name of withhold) delete childEnv[name];
    const child = spawn(file, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const signalGroup = (sig: NodeJS.Signals) => {
      try { process.kill(-child.pid!, sig); } catch { /* already gone */ }
    };
    if (timeoutMs !== undefined) {
      timers.push(setTimeout(() => {
        timedOut = true;
        signalGroup('SIGTERM');
        timers.push(setTimeout(() => signalGroup('SIGKILL'), 5000));
      }, timeoutMs));
    }
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const done = (exitCode: number | null, signal: string | null, extra = '') => {
      timers.forEach(clearTimeout);
      resolve({
        phase, command: hookText(hook), exitCode, signal, durationMs: Math.round(performance.now() - t0),
        ...(timedOut ? { timedOut } : {}), output: output + extra,
      });
    };
    child.once('error', (err) => done(null, null, `${output ? '\n' : ''}cannot run it: ${describeCause(err)}`));
    child.once('close', (code, signal) => done(code, signal));
  });
}

export function hookFailed(r: HookRun): boolean {
  return r.exitCode !== 0;
}

/** The error for a failed hook: the command, how it ended, and its last line of output. */
export function hookError(r: HookRun, what: string): HookError {
  const how = r.timedOut ? `timed out after ${Math.round(r.durationMs / 1000)} s and was stopped` : r.signal ? `was killed by ${r.signal}` : r.exitCode === null ? 'could not be started' : `exited with status ${r.exitCode}`;
  const last = r.output.trim().split('\n').pop()?.trim();
  return new HookError(`${r.phase} hook ${JSON.stringify(r.command)} for ${what} ${how}${last ? `: ${last}` : ''}`);
}
