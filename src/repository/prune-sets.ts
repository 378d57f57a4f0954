/**
 * prune of one or many sets, then gc, under one exclusive lock: what `vmbkp prune` does. A
 * dry run takes no lock and changes nothing; its gc figures are gc's plan with the
 * generations the prune would remove counted as gone, so they are what the real run frees.
 */
import type { OnCountProgress } from './count-progress.js';
import { type GcResult, gcUnderLock } from './gc.js';
import { RepositoryLock } from './lock.js';
import { type PruneResult, checkPolicy, pruneUnderLock } from './prune.js';
import type { Repository } from './repository.js';
import type { Calendar, RetentionPolicy } from './retention.js';

export interface PruneSetsRequest {
  readonly repo: Repository;
  readonly sets: readonly { readonly set: string; readonly policy: RetentionPolicy }[];
  readonly dryRun: boolean;
  /** Run gc after the prune, when it removed a generation (with nothing removed, gc has nothing new to free). */
  readonly gc: boolean;
  readonly calendar?: Calendar;
  readonly onWarning?: (message: string) => void;
  readonly onProgress?: OnCountProgress;
}

export interface PruneSetsResult {
  readonly sets: readonly PruneResult[];
  readonly gc?: GcResult;
  readonly dryRun: boolean;
}

export async function pruneSets(req: PruneSetsRequest): Promise<PruneSetsResult> {
  for (const s of req.sets) checkPolicy(s.policy);
  const run = async (): Promise<PruneSetsResult> => {
    const sets: PruneResult[] = [];
    for (const s of req.sets) {
      sets.push(await pruneUnderLock({
        repo: req.repo, set: s.set, policy: s.policy, dryRun: req.dryRun,
        ...(req.calendar ? { calendar: req.calendar } : {}), ...(req.onWarning ? { onWarning: req.onWarning } : {}),
        ...(req.onProgress ? { onProgress: req.onProgress } : {}),
      }));
    }
    if (!req.gc || sets.every((r) => r.remove.length === 0)) return { sets, dryRun: req.dryRun };
    const without = req.dryRun ? sets.flatMap((r) => r.remove.map((generation) => ({ set: r.set, generation }))) : undefined;
    return { sets, gc: await gcUnderLock(req.repo, { dryRun: req.dryRun, without, onProgress: req.onProgress, onWarning: req.onWarning }), dryRun: req.dryRun };
  };
  if (req.dryRun) return run();
  const what = req.sets.length === 1 ? `prune of ${req.sets[0]!.set}` : `prune of ${req.sets.length} sets`;
  // Named as a prune alone has always been (scripts and messages know "prune of SET"); its gc runs under it.
  const lock = await RepositoryLock.acquire(req.repo, 'exclusive', what, req.onWarning);
  try {
    return await run();
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}
