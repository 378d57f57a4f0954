/**
 * Who owns a lock, a temporary upload, a snapshot or an unfinished restore: a process
 * named by host, pid and start time. A pid alone is not enough — pids are reused, and a
 * dead owner whose pid now belongs to another process would look alive forever.
 *
 * The start time is the process's start in clock ticks since boot (`/proc/PID/stat`
 * field 22), plus the boot's id (`/proc/sys/kernel/random/boot_id`), which tells a
 * process of an earlier boot from one of this boot with the same pid and ticks. Boot time
 * (`btime`) is not used: it moves when the clock is stepped, and a false "dead" would
 * remove a live lock. Where /proc is absent both are unknown and an owner is judged by
 * its pid alone, as are records written before start times were recorded.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ProcessIdentity {
  readonly host: string;
  readonly pid: number;
  /** Start of the process in clock ticks since boot, as a decimal string; absent when unknown. */
  readonly start?: string;
  /** The id of the boot the process runs in; absent when unknown. */
  readonly boot?: string;
}

/**
 * What can be said about an owner from this host: `alive` (its process runs), `dead` (it
 * is gone: no such pid, or the pid now belongs to another process or boot), or `unknown`
 * (another host's process, which this host cannot see).
 */
export type OwnerState = 'alive' | 'dead' | 'unknown';

/** The start of a process in clock ticks since boot, or undefined when it cannot be read. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start !== undefined && /^\d+$/.test(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

function readBootId(): string | undefined {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return /^[0-9a-f-]+$/i.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * This host's name as owners record it. VMBKP_TEST_HOST replaces it — for tests only: it
 * lets one machine play two hosts (two vmbkp processes that cannot see each other's pids).
 * Never set it in production: two real hosts with one name would judge each other's
 * live processes by pid.
 */
export function localHost(): string {
  return process.env['VMBKP_TEST_HOST'] || hostname();
}

let self: ProcessIdentity | undefined;
let boot: string | undefined | null = null;

function currentBoot(): string | undefined {
  if (boot === null) boot = readBootId();
  return boot;
}

/** This process. The host name is read each time: it is what other processes compare. */
export function thisProcess(): ProcessIdentity {
  if (!self || self.host !== localHost()) {
    const start = processStart(process.pid);
    const b = currentBoot();
    self = { host: localHost(), pid: process.pid, ...(start !== undefined ? { start } : {}), ...(b !== undefined ? { boot: b } : {}) };
  }
  return self;
}

/** Whether `owner` is this very process (fields it does not record are not compared). */
export function isThisProcess(owner: ProcessIdentity): boolean {
  const me = thisProcess();
  return owner.host === me.host && owner.pid === me.pid
    && (owner.start === undefined || me.start === undefined || owner.start === me.start)
    && (owner.boot === undefined || me.boot === undefined || owner.boot === me.boot);
}

function pidExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists and belongs to someone else.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Judges an owner: see OwnerState. What the owner does not record, or /proc cannot tell, is not held against it. */
export function ownerState(owner: ProcessIdentity): OwnerState {
  if (owner.host !== localHost()) return 'unknown';
  const nowBoot = currentBoot();
  if (owner.boot !== undefined && nowBoot !== undefined && owner.boot !== nowBoot) return 'dead';
  if (!pidExists(owner.pid)) return 'dead';
  if (owner.start !== undefined) {
    const now = processStart(owner.pid);
    if (now !== undefined && now !== owner.start) return 'dead';
  }
  return 'alive';
}

/** The owner as text for a description or marker: `host=H pid=P`, then `pidStart=T` and `boot=B` when known. */
export function formatOwner(owner: ProcessIdentity): string {
  return `host=${owner.host} pid=${owner.pid}`
    + (owner.start !== undefined ? ` pidStart=${owner.start}` : '')
    + (owner.boot !== undefined ? ` boot=${owner.boot}` : '');
}

/**
 * Reads an owner out of text that `formatOwner` wrote, or that older versions wrote
 * (`host=H pid=P` without a start time). Undefined when the text names no owner.
 */
export function parseOwner(text: string): ProcessIdentity | undefined {
  const m = /(?:^|\s)host=(\S+) pid=(\d+)(?=\s|$)/.exec(text);
  if (!m) return undefined;
  const start = /(?:^|\s)pidStart=(\d+)(?=\s|$)/.exec(text)?.[1];
  const b = /(?:^|\s)boot=([0-9a-fA-F-]+)(?=\s|$)/.exec(text)?.[1];
  return { host: m[1]!, pid: Number(m[2]), ...(start !== undefined ? { start } : {}), ...(b !== undefined ? { boot: b } : {}) };
}
