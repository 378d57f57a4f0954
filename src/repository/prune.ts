/**
 * prune: removes the generations of a set that a retention policy does not keep. It
 * removes manifests only; the data they alone referenced is reclaimed by gc. Each removal
 * is one object deletion, so a prune killed midway leaves a consistent repository and a
 * second run finishes the job.
 */
import { UsageError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { RepositoryLock } from './lock.js';
import type { Repository } from './repository.js';
import { type Calendar, type RetentionDecision, type RetentionPolicy, applyRetention } from './retention.js';

export interface PruneRequest {
  readonly repo: Repository;
  readonly set: string;
  readonly policy: RetentionPolicy;
  readonly dryRun: boolean;
  readonly calendar?: Calendar;
  readonly onWarning?: (message: string) => void;
}

export interface PruneResult extends RetentionDecision {
  readonly set: string;
  readonly dryRun: boolean;
}

export function checkPolicy(p: RetentionPolicy): void {
  for (const [k, v] of Object.entries(p)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new UsageError(`--keep-${k} must be a whole number ≥ 0, got ${v}`);
  }
  if (!((p.last ?? 0) >= 1)) throw new UsageError('prune needs --keep-last N with N ≥ 1: the newest generation is always kept');
}

export async function prune(req: PruneRequest): Promise<PruneResult> {
  checkPolicy(req.policy);
  const lock = await RepositoryLock.acquire(req.repo, 'exclusive', `prune of ${req.set}`, req.onWarning);
  try {
    await failpoint('prune:locked');
    const refs = await req.repo.listGenerations(req.set);
    const dated = [];
    for (const r of refs) {
      const m = await req.repo.readGeneration(r.set, r.generation);
      dated.push({ generation: r.generation, time: new Date(m.started) });
    }
    const decision = applyRetention(dated, req.policy, req.calendar);
    if (!req.dryRun) {
      for (const g of decision.remove) {
        await req.repo.removeGeneration({ set: req.set, generation: g });
        await failpoint('prune:removed-one');
      }
    }
    return { ...decision, set: req.set, dryRun: req.dryRun };
  } finally {
    await lock.release();
  }
}
