/** `restore --vcenter`: one VM backup restored as a VM (or over one), through the chosen transport. */
import { type MachineRestoreResult, restoreMachine } from '../jobs/restore-machine.js';
import type { RestoreSpec } from '../jobs/restore-batch.js';
import { VsphereProvider } from '../providers/vsphere/provider.js';
import type { RestoreOutcome, VmRestoreEvent, VsphereRestoreRequest } from '../providers/vsphere/restore-vm.js';
import { type Transport, type VddkSettings, vmDiskOpener, writesWholeDisk } from '../providers/vsphere/transport.js';
import type { VcenterJob } from './vcenter.js';

export type { VmRestoreEvent } from '../providers/vsphere/restore-vm.js';

/** One restore of a recipe or the command line: the generation, and the VM to make of it. */
export type VmRestoreSpec = RestoreSpec<VsphereRestoreRequest>;
export type VmRestoreResult = MachineRestoreResult<RestoreOutcome>;

/** The vSphere provider of a job, writing restored disks through `transport`. */
export async function restoreProvider(job: VcenterJob, transport: Transport, vddk?: VddkSettings): Promise<VsphereProvider> {
  return new VsphereProvider(job.session, {
    restore: { openDisk: await vmDiskOpener(job.connection, transport, vddk), writesWholeDisk: writesWholeDisk(transport) },
  });
}

export interface VmRestoreRun {
  readonly job: VcenterJob;
  readonly spec: VmRestoreSpec;
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
  const provider = await restoreProvider(job, run.transport, run.vddk);
  const { set, generation, ...request } = run.spec;
  return restoreMachine({
    repo: job.repo, provider, set, generation,
    request: { ...request, signal: run.signal, diskConcurrency: run.disksAtOnce, ...(run.onEvent ? { onEvent: run.onEvent } : {}) },
  });
}
