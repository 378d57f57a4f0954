/**
 * Repository locks. backup, restore and verify take shared locks; prune, gc and key removal
 * take an exclusive one. A lock is an object `locks/<uuid>.json` recording its holder (host,
 * pid, process start time: see process-identity.ts), what it does and when; a holder
 * refreshes it while it runs. In an encrypted repository the record is sealed (its
 * operation names a set).
 *
 * | holder \ wants | shared | exclusive |
 * | shared         |   ok   |  locked   |
 * | exclusive      | locked |  locked   |
 *
 * A third kind, `commit`, is held for the moment a backup numbers and writes a generation
 * manifest (under its shared lock): it conflicts only with another commit of the same set,
 * and a commit that meets one waits and tries again. Where puts are not create-if-absent
 * (a versioned S3 bucket, which object lock needs, accepts a second put of a name as a new
 * version), this is what keeps two hosts from giving two generations one number.
 *
 * Taking a lock: write ours, then look at the others; on conflict remove ours and fail.
 * A lock of a process that is gone from this host (pid not running, or now another
 * process's) is stale and removed with a warning; a lock from another host that was not
 * refreshed for STALE_AFTER_MS is reported with the command that clears it.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError, RepositoryLockedError } from '../errors.js';
import { type ProcessIdentity, ownerState, thisProcess } from '../process-identity.js';
import type { StorageBackend } from '../storage/backend.js';
import { LOCKS_PREFIX } from './layout.js';
import type { ObjectCodec } from './object-codec.js';

/** Where locks live and how their records are stored: a Repository is one. */
export interface LockSpace {
  readonly backend: StorageBackend;
  readonly objects: ObjectCodec;
}

export type LockKind = 'shared' | 'exclusive' | 'commit';
/** How often a holder rewrites its lock, so other hosts see it is still there. */
const REFRESH_MS = 5 * 60_000;
/** A lock of another host not refreshed for this long is reported as abandoned. */
export const STALE_AFTER_MS = 30 * 60_000;

const LockRecord = z.object({
  kind: z.enum(['shared', 'exclusive', 'commit']),
  /** commit: the set whose next generation is being written. */
  set: z.string().optional(),
  operation: z.string(),
  host: z.string(),
  pid: z.number().int(),
  /** Start time of the process (Linux clock ticks), so a reused pid is not taken for the holder. */
  pidStart: z.string().optional(),
  /** The boot the process runs in, so a pid and start time of an earlier boot are not taken for it either. */
  boot: z.string().optional(),
  time: z.string(),
  /** When the holder took the lock; `time` moves with each refresh. Absent in locks of older versions. */
  since: z.string().optional(),
});
export type LockRecord = z.infer<typeof LockRecord>;

export interface LockInfo {
  readonly name: string;
  readonly record: LockRecord | undefined;
  readonly stale: boolean;
}

function holder(r: LockRecord): ProcessIdentity {
  return { host: r.host, pid: r.pid, ...(r.pidStart !== undefined ? { start: r.pidStart } : {}), ...(r.boot !== undefined ? { boot: r.boot } : {}) };
}

/** Is this lock certainly or probably abandoned? */
export function isStale(record: LockRecord, now = Date.now()): boolean {
  const state = ownerState(holder(record));
  if (state !== 'unknown') return state === 'dead';
  return now - Date.parse(record.time) > STALE_AFTER_MS;
}

/**
 * Every lock but `except` (the caller's own, which it need not read back), read at once:
 * on object storage each read is a round trip.
 */
export async function readLocks(space: LockSpace, except?: string): Promise<LockInfo[]> {
  const { backend, objects } = space;
  const names = (await backend.list(LOCKS_PREFIX)).filter((name) => name !== except);
  const read = await Promise.all(names.map(async (name): Promise<LockInfo | undefined> => {
    let record: LockRecord | undefined;
    try {
      const parsed = LockRecord.safeParse(JSON.parse(objects.open(name, name, await backend.get(name)).toString('utf8')));
      record = parsed.success ? parsed.data : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined; // released meanwhile
      record = undefined;
    }
    return { name, record, stale: record === undefined || isStale(record) };
  }));
  return read.filter((l) => l !== undefined);
}

/** Does a holder of `other` keep `mine` from being taken? */
function conflicts(mine: LockRecord, other: LockRecord): boolean {
  if (mine.kind === 'commit' || other.kind === 'commit') return mine.kind === other.kind && mine.set === other.set;
  return !(mine.kind === 'shared' && other.kind === 'shared');
}

/** How long a commit waits for another commit of its set (which takes a second or two) before giving up. */
const COMMIT_WAIT_MS = 120_000;

function describe(r: LockRecord): string {
  return `${r.operation} (pid ${r.pid} on ${r.host}, since ${r.time})`;
}

export class RepositoryLock {
  private name: string;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> = Promise.resolve();
  private released = false;

  private readonly backend: StorageBackend;

  private constructor(private readonly space: LockSpace, readonly record: LockRecord, name: string) {
    this.backend = space.backend;
    this.name = name;
  }

  /** Takes a lock or throws RepositoryLockedError. `onWarning` hears about stale locks removed. */
  static async acquire(space: LockSpace, kind: Exclude<LockKind, 'commit'>, operation: string,
    onWarning: (message: string) => void = () => {}): Promise<RepositoryLock> {
    return RepositoryLock.take(space, kind, undefined, operation, onWarning);
  }

  /**
   * The commit lock of a set: waits (random pauses, so two waiters do not meet again in
   * step) while another process commits a generation of the set, up to two minutes.
   */
  static async acquireCommit(space: LockSpace, set: string, onWarning: (message: string) => void = () => {},
    sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms))): Promise<RepositoryLock> {
    const deadline = Date.now() + COMMIT_WAIT_MS;
    for (;;) {
      try {
        return await RepositoryLock.take(space, 'commit', set, `commit of a generation of ${set}`, onWarning);
      } catch (err) {
        if (!(err instanceof CommitBusy) || Date.now() >= deadline) throw err instanceof CommitBusy ? err.locked : err;
        await sleep(50 + Math.floor(Math.random() * 450));
      }
    }
  }

  private static async take(space: LockSpace, kind: LockKind, set: string | undefined, operation: string,
    onWarning: (message: string) => void): Promise<RepositoryLock> {
    const { backend } = space;
    const me = thisProcess();
    const record: LockRecord = {
      kind, ...(set !== undefined ? { set } : {}), operation, host: me.host, pid: me.pid,
      ...(me.start !== undefined ? { pidStart: me.start } : {}), ...(me.boot !== undefined ? { boot: me.boot } : {}),
      time: new Date().toISOString(),
    };
    record.since = record.time;
    const lock = new RepositoryLock(space, record, `${LOCKS_PREFIX}${randomUUID()}.json`);
    await lock.write();
    try {
      for (const other of await readLocks(space, lock.name)) {
        const r = other.record;
        if (r && !conflicts(record, r)) continue;
        if (r && other.stale && r.host === me.host) {
          await backend.remove(other.name);
          onWarning(`removed stale lock of ${describe(r)}: that process is gone`);
          continue;
        }
        const cmd = `vmbkp unlock --repo ${backend.location}`;
        if (!r) throw new RepositoryLockedError(`repository ${backend.location} has an unreadable lock ${other.name}; if no vmbkp is running, clear it with: ${cmd}`);
        if (other.stale) throw new RepositoryLockedError(`repository ${backend.location} is locked by ${describe(r)}, which looks abandoned; if it is not running, clear it with: ${cmd}`);
        if (kind === 'commit') throw new CommitBusy(new RepositoryLockedError(`set ${set} of repository ${backend.location} stayed locked by ${describe(r)}; try again when it is done`));
        throw new RepositoryLockedError(`repository ${backend.location} is locked by ${describe(r)}; ${operation} needs it ${kind === 'exclusive' ? 'to itself' : 'without an exclusive holder'}, try again when it is done`);
      }
    } catch (err) {
      await lock.releaseAfterFailure();
      throw err;
    }
    lock.timer = setInterval(() => { lock.refreshing = lock.refresh(); }, REFRESH_MS);
    lock.timer.unref();
    return lock;
  }

  private async write(): Promise<void> {
    await this.backend.put(this.name, this.space.objects.seal(this.name, Buffer.from(JSON.stringify(this.record) + '\n')));
  }

  /** Objects are write-once: refreshing writes a new lock, then removes the old one. */
  private async refresh(): Promise<void> {
    const old = this.name;
    (this.record as { time: string }).time = new Date().toISOString();
    this.name = `${LOCKS_PREFIX}${randomUUID()}.json`;
    try {
      await this.write();
      await this.backend.remove(old);
    } catch {
      this.name = old; // keep the old lock; the next refresh tries again
    }
  }

  /** Removes the lock; once only (a second call does nothing). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.refreshing;
    await this.backend.remove(this.name);
  }

  /**
   * Releases the lock of an operation that failed. A release that fails too (the storage is
   * gone, most likely the same outage) is not reported: the operation's own error says what
   * went wrong, and the lock left behind is stale, cleared like a crashed process's.
   */
  async releaseAfterFailure(): Promise<void> {
    await this.release().catch(() => {});
  }
}

/** Another process commits a generation of the set right now: worth waiting for. */
class CommitBusy extends Error {
  constructor(readonly locked: RepositoryLockedError) {
    super(locked.message);
  }
}

/** Removes stale locks (or all, when `all`); returns the names removed. */
export async function clearLocks(space: LockSpace, all: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const l of await readLocks(space)) {
    if (all || l.stale) {
      await space.backend.remove(l.name);
      removed.push(l.name);
    }
  }
  return removed;
}
