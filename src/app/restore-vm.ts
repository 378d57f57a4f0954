/** `restore --vcenter`: one VM backup restored as a VM (or over one), through the chosen transport. */
import { type VmRestoreEvent, type VmRestoreResult, restoreVm } from '../jobs/restore-vm.js';
import type { RestoreSpec } from '../jobs/restore-batch.js';
import { type Transport, type VddkSettings, vmDiskOpener, writesWholeDisk } from './transport.js';
import type { VcenterJob } from './vcenter.js';

export type { RestoreSpec } from '../jobs/restore-batch.js';
export type { VmRestoreEvent, VmRestoreResult } from '../jobs/restore-vm.js';

export interface VmRestoreRun {
  readonly job: VcenterJob;
  readonly spec: RestoreSpec;
  readonly transport: Transport;
  readonly vddk?: VddkSettings | undefined;
  /** Disks written (and read back) at once. */
  readonly disksAtOnce: number;
  /** Stops the restore at its next write; a VM it created is then destroyed. */
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: (e: VmRestoreEvent) => void;
}

export async function restoreVmRun(run: VmRestoreRun): Promise<VmRestoreResult> {
  const { job } = run;
  const openDisk = await vmDiskOpener(job.connection, run.transport, run.vddk);
  return restoreVm({
    ...run.spec, repo: job.repo, session: job.session, openDisk, writesWholeDisk: writesWholeDisk(run.transport),
    signal: run.signal, diskConcurrency: run.disksAtOnce, ...(run.onEvent ? { onEvent: run.onEvent } : {}),
  });
}
