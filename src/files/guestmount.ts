/**
 * A read-only FUSE mount of one filesystem through guestmount, kept in the foreground
 * (`--no-fork`) so that vmbkp owns the process and knows when it is gone. Unmounting is
 * guestunmount's job; it is only asked when /proc/mounts lists the directory, because on a
 * directory that is not mounted it retries for half a minute.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { IoError } from '../errors.js';
import { guestfsEnvironment } from './environment.js';
import type { GuestfishDrive } from './guestfish.js';

/** How /proc/mounts writes a path (octal escapes for space, tab, newline, backslash). */
function mountsPath(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

export async function isMounted(dir: string): Promise<boolean> {
  const text = await fs.readFile('/proc/mounts', 'utf8');
  const want = mountsPath(dir);
  return text.split('\n').some((l) => l.split(' ')[1] === want);
}

export interface GuestMount {
  /** Unmounts (when mounted) and waits until guestmount and its appliance are gone. Idempotent. */
  unmount(): Promise<void>;
  /** Settles when guestmount exits (unmounted from outside, or failed). */
  readonly exited: Promise<void>;
}

function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Mounts `device` of the drive read-only at `dir` (absolute, an existing empty directory). */
export async function guestMount(drive: GuestfishDrive, device: string, dir: string, signal?: AbortSignal): Promise<GuestMount> {
  const uri = `nbd://?socket=${drive.socket}`;
  const child = spawn('guestmount', ['--ro', '--no-fork', '--format=raw', '-a', uri, '-m', device, dir],
    { stdio: ['ignore', 'ignore', 'pipe'], env: guestfsEnvironment(), detached: true });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const spawned = new Promise<Error | undefined>((resolve) => { child.once('error', resolve); child.once('spawn', () => resolve(undefined)); });
  const spawnError = await spawned;
  if (spawnError) throw new IoError(`cannot run guestmount (is libguestfs-tools installed?): ${spawnError.message}`);
  const exit = waitExit(child);
  let gone = false;
  void exit.then(() => { gone = true; });
  // Mounted once /proc/mounts lists it; guestmount says nothing on stdout when it is.
  while (!(await isMounted(dir))) {
    if (gone || signal?.aborted) {
      if (!gone) { try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ } }
      const r = await exit;
      if (signal?.aborted && !(await isMounted(dir))) throw new IoError(`mounting ${device} at ${dir} was interrupted`);
      const why = stderr.split('\n').filter((l) => l.trim() !== '').slice(-2).join(' ') || `exit ${r.signal ?? r.code}`;
      throw new IoError(`guestmount of ${device} at ${dir} failed: ${why.replace(/^libguestfs: error: /, '')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  let unmounting: Promise<void> | undefined;
  return {
    exited: exit.then(() => {}),
    unmount: () => (unmounting ??= (async () => {
      if (!gone && (await isMounted(dir))) {
        const u = spawn('guestunmount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        u.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
        const r = await waitExit(u);
        if (r.code !== 0 && (await isMounted(dir))) throw new IoError(`guestunmount ${dir} failed: ${err.trim() || `exit ${r.code}`}`);
      }
      if (!gone) {
        const killer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 30_000);
        await exit;
        clearTimeout(killer);
      }
    })()),
  };
}
