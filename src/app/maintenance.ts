/** Keeping a repository healthy: verify, prune, gc, and clearing locks. */
import { clearLocks } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';

export { gc } from '../repository/gc.js';
export { prune } from '../repository/prune.js';
export { verify } from '../repository/verify.js';

/** Removes stale locks (of processes that are gone), or every lock with `all`; returns what was removed. */
export function unlock(repo: Repository, all: boolean): ReturnType<typeof clearLocks> {
  return clearLocks(repo, all);
}
