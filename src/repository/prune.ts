/**
 * prune: removes the generations of a set that a retention policy does not keep. It
 * removes manifests only; the data they alone referenced is reclaimed by gc. Each removal
 * is one object deletion, so a prune killed midway leaves a consistent repository and a
 * second run finishes the job.
 */
import { UsageError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { OnCountProgress } from './count-progress.js';
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
  readonly onProgress?: OnCountProgress;
}

export interface PruneResult extends RetentionDecision {
  readonly set: string;
  readonly dryRun: boolean;
  /** Generations the policy would remove that an object lock keeps for now, and until when. */
  readonly locked: readonly { readonly generation: number; readonly until: string }[];
}

export function checkPolicy(p: RetentionPolicy): void {
  for (const [k, v] of Object.entries(p)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new UsageError(`--keep-${k} must be a whole number ≥ 0, got ${v}`);
  }
  if (!((p.last ?? 0) >= 1)) throw new UsageError('prune needs --keep-last N with N ≥ 1: the newest generation is always kept');
}

/** Prunes one set under an exclusive lock; a dry run takes none (a lock is a write) and removes nothing. */
export async function prune(req: PruneRequest): Promise<PruneResult> {
  checkPolicy(req.policy);
  if (req.dryRun) return pruneUnderLock(req);
  const lock = await RepositoryLock.acquire(req.repo, 'exclusive', `prune of ${req.set}`, req.onWarning);
  try {
    return await pruneUnderLock(req);
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}

/** prune for a caller that holds the exclusive lock (prune of several sets, then gc), or a dry run. */
export async function pruneUnderLock(req: PruneRequest): Promise<PruneResult> {
  checkPolicy(req.policy);
  await failpoint('prune:locked');
  const refs = await req.repo.listGenerations(req.set);
  const dated = [];
  for (const r of refs) {
    req.onProgress?.({ step: 'reading generations', unit: 'generations', done: dated.length, total: refs.length });
    const m = await req.repo.readGeneration(r.set, r.generation);
    dated.push({ generation: r.generation, time: new Date(m.started) });
  }
  if (refs.length > 0) req.onProgress?.({ step: 'reading generations', unit: 'generations', done: refs.length, total: refs.length });
  const decision = applyRetention(dated, req.policy, req.calendar);
  const locked: { generation: number; until: string }[] = [];
  const remove: number[] = [];
  for (const g of decision.remove) {
    const until = req.repo.config.objectLock ? await req.repo.generationLockedUntil({ set: req.set, generation: g }) : undefined;
    if (until === undefined) remove.push(g);
    else locked.push({ generation: g, until: new Date(until).toISOString() });
  }
  // Credentials that may not delete (an append-only user) are refused before anything is removed.
  if (!req.dryRun && remove.length > 0) await req.repo.backend.checkDeletable?.();
  if (!req.dryRun) {
    for (const [i, g] of remove.entries()) {
      req.onProgress?.({ step: 'removing generations', unit: 'generations', done: i, total: remove.length });
      await req.repo.removeGeneration({ set: req.set, generation: g });
      await failpoint('prune:removed-one');
    }
    if (remove.length > 0) req.onProgress?.({ step: 'removing generations', unit: 'generations', done: remove.length, total: remove.length });
  }
  return { ...decision, remove, locked, set: req.set, dryRun: req.dryRun };
}
