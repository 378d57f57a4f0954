/**
 * A batch of VM restores on one vCenter session (what a restore recipe runs): one after
 * the other, each as `restore --vcenter` would do it; one failing (and cleaning up after
 * itself) does not stop the others.
 */
import { errorRecord } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import type { OpenVmDisk } from '../sources/vsphere-target.js';
import type { VsphereSession } from '../vsphere/session.js';
import type { BatchTotals } from './backup-batch.js';
import { type VmRestoreEvent, type VmRestoreRequest, type VmRestoreResult, restoreVm } from './restore-vm.js';

/** One restore: the options of `restore --vcenter`. */
export type RestoreSpec = Pick<VmRestoreRequest, 'set' | 'generation' | 'name' | 'datastore' | 'host' | 'folder' | 'resourcePool' | 'network' | 'powerOn' | 'keepIdentity' | 'overwrite'>;

export interface RestoreBatchRequest {
  readonly repo: Repository;
  readonly session: VsphereSession;
  readonly restores: readonly RestoreSpec[];
  readonly openDisk: OpenVmDisk;
  readonly writesWholeDisk: boolean;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: { name: string; event: VmRestoreEvent }) => void;
}

export interface RestoreOutcome {
  readonly name: string;
  readonly set: string;
  readonly ok: boolean;
  readonly result?: VmRestoreResult;
  readonly error?: { readonly code: string; readonly message: string };
  readonly warnings: readonly string[];
}

export interface RestoreBatchReport extends BatchTotals {
  readonly restores: readonly RestoreOutcome[];
}

export async function runRestoreBatch(req: RestoreBatchRequest): Promise<RestoreBatchReport> {
  const started = new Date();
  const t0 = performance.now();
  const restores: RestoreOutcome[] = [];
  for (const spec of req.restores) {
    const warnings: string[] = [];
    if (req.signal?.aborted) {
      restores.push({ name: spec.name, set: spec.set, ok: false, error: { code: 'IO', message: 'not started: the run was interrupted' }, warnings });
      continue;
    }
    try {
      const result = await restoreVm({
        ...spec, repo: req.repo, session: req.session, openDisk: req.openDisk, writesWholeDisk: req.writesWholeDisk,
        ...(req.signal ? { signal: req.signal } : {}),
        onEvent: (event) => {
          if (event.type === 'warning') warnings.push(event.message);
          req.onEvent?.({ name: spec.name, event });
        },
      });
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
