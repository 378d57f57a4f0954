/**
 * A VM backup restored as a VM: a new VM made from the generation's stored
 * configuration (CreateVM_Task with its controllers, disks and NICs), its disks opened
 * for the restore job to write and check (jobs/restore-machine.ts), then powered on
 * when asked. If anything fails after CreateVM_Task, the new VM is destroyed, so no
 * half-made VM is left behind. With `overwrite`, an existing powered-off VM of that
 * name with the same disks gets its disks written instead (it is never destroyed).
 */
import { AlreadyExistsError, InputError } from '../../errors.js';
import type { OpenVmDisk } from '../../sources/vsphere-target.js';
import { listVms } from '../../vsphere/inventory.js';
import type { VsphereSession } from '../../vsphere/session.js';
import type { MachineRestoreContext, MachineUnderRestore } from '../machine-provider.js';
import type { RestoreContext, RestoreOutcome, VmRestoreRequest, VsphereRestoreRequest } from './restore-vm-context.js';
import { createForRestore } from './restore-vm-create.js';
import { overwriteVm } from './restore-vm-overwrite.js';
import { abortLeftImportLeases } from '../../vsphere/import-lease-record.js';
import { removeIncompleteRestores } from './restore-vm-unfinished.js';
import { savedNvram } from './restore-vm-nvram.js';
import type { VsphereMachine } from './stored-vm.js';

export type { RestoredDisk, RestoreOutcome, VmRestoreEvent, VmRestoreResult, VsphereRestoreRequest } from './restore-vm-context.js';

/** How the provider writes a restored VM's disks. */
export interface VmRestoreTransport {
  readonly openDisk: OpenVmDisk;
  /** The transport writes every byte of a disk (https): a thin disk then takes its capacity on the datastore. */
  readonly writesWholeDisk: boolean;
  /** The VM is made by ImportVApp and its disks written through the import lease (nfc). */
  readonly importsVm?: boolean;
}

/**
 * The VM of a generation on `session`, ready for its disks to be written: unfinished
 * restores of its name removed, then created (or, with `overwrite`, the existing one
 * checked). The job (jobs/restore-machine.ts) holds the lock, has loaded the disks'
 * indexes, and writes and checks the disks.
 */
export async function prepareVmRestore(session: VsphereSession, transport: VmRestoreTransport, job: MachineRestoreContext<VsphereMachine>,
  request: VsphereRestoreRequest): Promise<MachineUnderRestore<RestoreOutcome>> {
  const req: VmRestoreRequest = {
    ...request, session, set: job.manifest.set, generation: String(job.manifest.generation),
    openDisk: transport.openDisk, writesWholeDisk: transport.writesWholeDisk, importsVm: !!transport.importsVm,
  };
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  const { gen, machine } = job;

  // A killed nfc restore's import lease holds its VM: aborted first, so that the VM can be removed.
  await abortLeftImportLeases(req.session, warn);
  const existing = await removeIncompleteRestores(req, (await listVms(req.session)).filter((v) => v.name === req.name), warn);
  if (existing.length > 0 && !req.overwrite) {
    throw new AlreadyExistsError(`restoring ${gen} as VM ${req.name} refused: a VM of that name exists on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}); choose another --name, or pass --overwrite to write over its disks`);
  }
  if (existing.length > 0 && req.importsVm) {
    throw new InputError(`restoring ${gen} over VM ${req.name} refused: --transport nfc imports a new VM (ImportVApp) and cannot write an existing VM's disks; choose another --name, or use --transport https or vddk with --overwrite`);
  }
  if (existing.length > 1) throw new InputError(`VM name ${req.name} is ambiguous on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}): --overwrite needs one VM`);

  const nvram = await savedNvram(job.repo, machine, gen);
  // Files saved but no nvram: the VM had not been powered on (nothing lost), or the backup warned it could not read it.
  if (!machine.files) {
    warn(`${gen} was made before vmbkp saved the VM's nvram file: ${existing.length === 1 ? `VM ${req.name} keeps its own` : `VM ${req.name} starts with its firmware's default settings`}`);
  }
  const ctx: RestoreContext = { req, emit, warn, gen, machine, plans: job.disks, nvram };
  return existing.length === 1 ? overwriteVm(ctx, existing[0]!) : createForRestore(ctx);
}
