/** Keeping a repository healthy: verify, prune, gc, and clearing locks. */
import { type LockInfo, clearLocks, readLocks } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';

export { gc } from '../repository/gc.js';
export { prune } from '../repository/prune.js';
export { type PruneSetsResult, pruneSets } from '../repository/prune-sets.js';
export { verify } from '../repository/verify.js';
export { type PrunePolicies, type SetPolicy, profilePolicies, prunePolicies } from './prune-policies.js';

/** A lock as `unlock --list` shows it. */
export interface LockView {
  readonly name: string;
  /** Absent when the lock file cannot be read (it is then stale). */
  readonly kind?: string;
  readonly set?: string;
  readonly operation?: string;
  readonly host?: string;
  readonly pid?: number;
  readonly since?: string;
  readonly stale: boolean;
}

function view(l: LockInfo): LockView {
  const r = l.record;
  return {
    name: l.name, stale: l.stale,
    ...(r ? { kind: r.kind, ...(r.set !== undefined ? { set: r.set } : {}), operation: r.operation, host: r.host, pid: r.pid, since: r.since ?? r.time } : {}),
  };
}

/** Every lock present, read only. */
export async function listLocks(repo: Repository): Promise<LockView[]> {
  return (await readLocks(repo)).map(view).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Removes stale locks (of processes that are gone), or every lock with `all`; returns what
 * was removed. A dry run removes nothing and returns what it would remove.
 */
export async function unlock(repo: Repository, all: boolean, dryRun = false): Promise<LockView[]> {
  if (dryRun) return (await listLocks(repo)).filter((l) => all || l.stale);
  const views = new Map((await readLocks(repo)).map((l) => [l.name, view(l)]));
  return (await clearLocks(repo, all)).map((name) => views.get(name) ?? { name, stale: true });
}
