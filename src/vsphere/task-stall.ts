/**
 * How long a vSphere task may go without progress before vmbkp gives up on it:
 * VMBKP_TASK_STALL_TIMEOUT, seconds or a number with s, m or h ("90", "45m", "2h");
 * 1 hour by default. Progress is any change of the task's state or `info.progress`.
 */
import { InputError } from '../errors.js';

export const TASK_STALL_ENV = 'VMBKP_TASK_STALL_TIMEOUT';
const DEFAULT_MS = 3_600_000;

export function parseStall(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$/i.exec(text);
  const ms = m ? Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 's' | 'm' | 'h'] : NaN;
  if (!(ms > 0)) throw new InputError(`${TASK_STALL_ENV}=${JSON.stringify(text)} is not a duration: give seconds, or a number with s, m or h (e.g. 90, 45m, 2h)`);
  return ms;
}

export function taskStallMs(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const v = env[TASK_STALL_ENV];
  return v === undefined || v === '' ? DEFAULT_MS : parseStall(v);
}

export function formatStall(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
