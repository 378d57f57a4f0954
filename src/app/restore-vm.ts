/** `restore --vcenter`: one VM backup restored as a VM (or over one), through the chosen transport. */
import { RepositoryDamagedError } from '../errors.js';
import { resolveGeneration } from '../jobs/resolve.js';
import { type MachineRestoreResult, restoreMachine } from '../jobs/restore-machine.js';
import { loadDiskIndex } from '../repository/disk-index.js';
import { storedMachine } from '../providers/stored-machine.js';
import { type VmRestorePlan, planVmRestore } from '../providers/vsphere/restore-vm-plan.js';
import type { RestoreSpec } from '../jobs/restore-batch.js';
import { VsphereProvider } from '../providers/vsphere/provider.js';
import type { RestoreOutcome, VmRestoreEvent, VsphereRestoreRequest } from '../providers/vsphere/restore-vm.js';
import { type Transport, type VddkSettings, importsVm, vmDiskOpener, writesWholeDisk } from '../providers/vsphere/transport.js';
import type { VcenterJob } from './vcenter.js';

export type { VmRestoreEvent } from '../providers/vsphere/restore-vm.js';

/** One restore of a recipe or the command line: the generation, and the VM to make of it. */
export type VmRestoreSpec = RestoreSpec<VsphereRestoreRequest>;
export type VmRestoreResult = MachineRestoreResult<RestoreOutcome>;

/** The vSphere provider of a job, writing restored disks through `transport`. */
export async function restoreProvider(job: VcenterJob, transport: Transport, vddk?: VddkSettings): Promise<VsphereProvider> {
  return new VsphereProvider(job.session, {
    restore: { openDisk: await vmDiskOpener(job.connection, transport, vddk), writesWholeDisk: writesWholeDisk(transport), importsVm: importsVm(transport) },
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

export type { VmRestorePlan } from '../providers/vsphere/restore-vm-plan.js';

/**
 * `restore --vcenter … --dry-run`: the generation resolved, its disks' indexes loaded (what
 * each would write), then the VM that would be created or written over — read-only calls
 * only, no lock (a lock is a write).
 */
export async function planVmRestoreRun(job: VcenterJob, spec: VmRestoreSpec, transport: Transport): Promise<VmRestorePlan & { readonly set: string; readonly generation: number; readonly dryRun: true }> {
  const manifest = await resolveGeneration(job.repo, spec.set, spec.generation);
  const gen = `set ${manifest.set} generation ${manifest.generation}`;
  const machine = storedMachine(manifest);
  await job.repo.loadIndex();
  const disks = [];
  for (const stored of machine.disks.filter((d) => !d.skipped)) {
    const record = manifest.disks.find((r) => r.name === stored.name);
    if (!record) throw new RepositoryDamagedError(`${gen} describes disk ${stored.name} of the VM but holds no such disk`);
    disks.push({ stored, index: await loadDiskIndex(job.repo, record, `planning the restore of ${gen} disk ${stored.name}`) });
  }
  const plan = await planVmRestore(job.session, { manifest, machine, gen, disks }, {
    name: spec.name, datastore: spec.datastore, host: spec.host, folder: spec.folder, resourcePool: spec.resourcePool,
    network: spec.network, overwrite: !!spec.overwrite, writesWholeDisk: writesWholeDisk(transport),
  });
  return { dryRun: true, set: manifest.set, generation: manifest.generation, ...plan };
}
