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
  /** The last few KiB of its stdout and stderr, interleaved. */
  readonly output: string;
}

const OUTPUT_TAIL = 4096;

export function hookText(h: HookCommand): string {
  return typeof h === 'string' ? h : h.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs one hook to completion; a spawn failure becomes a run with exit code null. */
export function runHook(phase: 'pre' | 'post', hook: HookCommand, env: Readonly<Record<string, string>>): Promise<HookRun> {
  const [file, args] = typeof hook === 'string' ? ['/bin/sh', ['-c', hook]] : [hook[0]!, hook.slice(1)];
  const t0 = performance.now();
  return new Promise((resolve) => {
    let output = '';
    const keep = (d: Buffer) => { output = (output + d.toString('utf8')).slice(-OUTPUT_TAIL); };
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const done = (exitCode: number | null, signal: string | null, extra = '') => resolve({
      phase, command: hookText(hook), exitCode, signal, durationMs: Math.round(performance.now() - t0), output: output + extra,
    });
    child.once('error', (err) => done(null, null, `${output ? '\n' : ''}cannot run it: ${describeCause(err)}`));
    child.once('close', (code, signal) => done(code, signal));
  });
}

export function hookFailed(r: HookRun): boolean {
  return r.exitCode !== 0;
}

/** The error for a failed hook: the command, how it ended, and its last line of output. */
export function hookError(r: HookRun, what: string): HookError {
  const how = r.signal ? `was killed by ${r.signal}` : r.exitCode === null ? 'could not be started' : `exited with status ${r.exitCode}`;
  const last = r.output.trim().split('\n').pop()?.trim();
  return new HookError(`${r.phase} hook ${JSON.stringify(r.command)} for ${what} ${how}${last ? `: ${last}` : ''}`);
}
