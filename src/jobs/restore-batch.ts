/**
 * A batch of machine restores (what a restore recipe runs): one after the other, each as
 * `restore --vcenter` would do it; one failing (and cleaning up after itself) does not
 * stop the others.
 */
import { errorRecord } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import type { MachineRestoreEvent, MachineRestoreRequest, RestoreProvider, RestoredMachine } from '../providers/machine-provider.js';
import type { BatchTotals } from './backup-batch.js';
import { type MachineRestoreResult, restoreMachine } from './restore-machine.js';

/** One restore: the generation, and the provider's request (name, placement, …) without its events and signal. */
export type RestoreSpec<R extends MachineRestoreRequest> = { readonly set: string; readonly generation: string } & Omit<R, 'onEvent' | 'signal'>;

export interface RestoreBatchRequest<R extends MachineRestoreRequest, Result extends RestoredMachine> {
  readonly repo: Repository;
  readonly provider: RestoreProvider<R, Result>;
  readonly restores: readonly RestoreSpec<R>[];
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: { name: string; event: MachineRestoreEvent }) => void;
}

export interface RestoreOutcome<Result> {
  readonly name: string;
  readonly set: string;
  readonly ok: boolean;
  readonly result?: MachineRestoreResult<Result>;
  readonly error?: { readonly code: string; readonly message: string };
  readonly warnings: readonly string[];
}

export interface RestoreBatchReport<Result> extends BatchTotals {
  readonly restores: readonly RestoreOutcome<Result>[];
}

export async function runRestoreBatch<R extends MachineRestoreRequest, Result extends RestoredMachine>(
  req: RestoreBatchRequest<R, Result>): Promise<RestoreBatchReport<Result>> {
  const started = new Date();
  const t0 = performance.now();
  const restores: RestoreOutcome<Result>[] = [];
  for (const spec of req.restores) {
    const warnings: string[] = [];
    if (req.signal?.aborted) {
      restores.push({ name: spec.name, set: spec.set, ok: false, error: { code: 'IO', message: 'not started: the run was interrupted' }, warnings });
      continue;
    }
    try {
      const { set, generation, ...rest } = spec;
      const request = {
        ...rest,
        ...(req.signal ? { signal: req.signal } : {}),
        onEvent: (event: MachineRestoreEvent) => {
          if (event.type === 'warning') warnings.push(event.message);
          req.onEvent?.({ name: spec.name, event });
        },
      } as unknown as R; // the spec's request with its events and signal given back
      const result = await restoreMachine({ repo: req.repo, provider: req.provider, set, generation, request });
      restores.push({ name: spec.name, set: spec.set, ok: true, result, warnings });
    } catch (err) {
      restores.push({ name: spec.name, set: spec.set, ok: false, warnings, error: errorRecord(err) });
    }
  }
  const succeeded = restores.filter((r) => r.ok).length;
  return {
    started: started.toISOString(), finished: new Date().toISOString(), durationMs: Math.round(performance.now() - t0),
    ok: succeeded === restores.length, succeeded, failed: restores.length - succeeded, restores,
  };
}
