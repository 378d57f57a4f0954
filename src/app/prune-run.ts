/**
 * `vmbkp prune`: the sets chosen with their policies, pruned (or a dry run), and the
 * result as `prune --json` prints it and the server keeps as a job's result.
 */
import type { OnCountProgress } from '../repository/count-progress.js';
import type { PruneResult } from '../repository/prune.js';
import { type PruneSetsResult, pruneSets } from '../repository/prune-sets.js';
import type { Repository } from '../repository/repository.js';
import type { RetentionPolicy } from '../repository/retention.js';
import { type PrunePolicies, type PolicySources, prunePolicies } from './prune-policies.js';

export type PruneTarget =
  | { readonly set: string; readonly policy: RetentionPolicy }
  /** Every set, each by the policy its sources give it (prune --all). */
  | ({ readonly all: true } & PolicySources);

export interface PruneRunRequest {
  readonly repo: Repository;
  readonly target: PruneTarget;
  readonly dryRun: boolean;
  /** Run gc after (unless --no-gc). */
  readonly gc: boolean;
  readonly onWarning?: (message: string) => void;
  readonly onProgress?: OnCountProgress;
}

/** One set: its prune result with gc beside it; --all: every set's, the policies and the sets left alone. */
export type PruneJson = (PruneResult | {
  readonly dryRun: boolean; readonly sets: PruneSetsResult['sets'];
  readonly unmanaged: PrunePolicies['unmanaged']; readonly policies: PrunePolicies['sets'];
}) & { readonly gc?: PruneSetsResult['gc'] };

export interface PruneRun {
  readonly policies: PrunePolicies;
  readonly result: PruneSetsResult;
  readonly json: PruneJson;
}

export async function runPrune(req: PruneRunRequest): Promise<PruneRun> {
  const { target } = req;
  const policies: PrunePolicies = 'all' in target ? await prunePolicies(req.repo, target)
    : { sets: [{ set: target.set, policy: target.policy, from: '--keep-* options' }], unmanaged: [] };
  const result = await pruneSets({
    repo: req.repo, sets: policies.sets, dryRun: req.dryRun, gc: req.gc,
    ...(req.onWarning ? { onWarning: req.onWarning } : {}), ...(req.onProgress ? { onProgress: req.onProgress } : {}),
  });
  const gcPart = result.gc ? { gc: result.gc } : {};
  const json: PruneJson = 'all' in target
    ? { dryRun: req.dryRun, sets: result.sets, unmanaged: policies.unmanaged, policies: policies.sets, ...gcPart }
    : { ...result.sets[0]!, ...gcPart };
  return { policies, result, json };
}
