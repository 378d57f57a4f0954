/**
 * vSphere as a MachineProvider: VMs of one vCenter session, their disks read through the
 * chosen transport (https or vddk) and, for restores, written through it.
 */
import { InputError } from '../../errors.js';
import { listVms, vmsInFolder } from '../../vsphere/inventory.js';
import type { VsphereSession } from '../../vsphere/session.js';
import type {
  BeginBackupOptions, MachineBackup, MachineProvider, MachineRestoreContext, MachineSurvey, MachineToBackUp, MachineUnderRestore, ProviderEvent,
  SurveyOptions,
} from '../machine-provider.js';
import { type OpenDisk, type VsphereMachine, beginVmBackup, prepareVmBackup, setNameForVm } from './backup-vm.js';
import { type RestoreOutcome, type VmRestoreTransport, type VsphereRestoreRequest, prepareVmRestore } from './restore-vm.js';
import { surveyVm } from './survey.js';

/** How this provider's jobs reach the disks: chosen per job (app/transport.ts). */
export interface VsphereTransports {
  /** How a snapshot's disk is read (backups). */
  readonly openDisk?: OpenDisk;
  /** How a restored VM's disks are written. */
  readonly restore?: VmRestoreTransport;
}

export class VsphereProvider implements MachineProvider<VsphereRestoreRequest, RestoreOutcome> {
  readonly kind = 'vsphere-vm';

  constructor(readonly session: VsphereSession, private readonly transports: VsphereTransports = {}) {}

  get location(): string {
    return this.session.host;
  }

  async listMachines(): Promise<{ name: string; id: string }[]> {
    return (await listVms(this.session)).map((vm) => ({ name: vm.name, id: vm.ref.value }));
  }

  async machinesInFolder(path: string): Promise<{ name: string; id: string }[]> {
    return (await vmsInFolder(this.session, path)).map((vm) => ({ name: vm.name, id: vm.ref.value }));
  }

  setName(machineName: string): string {
    return setNameForVm(machineName);
  }

  prepareBackup(machine: string, opts: { readonly enableCbt: boolean }, emit: (e: ProviderEvent) => void): Promise<MachineToBackUp> {
    return prepareVmBackup(this.session, machine, opts, emit);
  }

  beginBackup(machine: MachineToBackUp, opts: BeginBackupOptions, emit: (e: ProviderEvent) => void): Promise<MachineBackup> {
    const openDisk = this.transports.openDisk;
    if (!openDisk) throw new TypeError('this vSphere provider was made without a transport to read disks with');
    return beginVmBackup(this.session, openDisk, machine, opts, emit);
  }

  survey(machine: { readonly name: string; readonly id: string }, opts: SurveyOptions): Promise<MachineSurvey> {
    return surveyVm(this.session, machine, opts);
  }

  async prepareRestore(ctx: MachineRestoreContext, request: VsphereRestoreRequest): Promise<MachineUnderRestore<RestoreOutcome>> {
    const transport = this.transports.restore;
    if (!transport) throw new TypeError('this vSphere provider was made without a transport to write disks with');
    if (!isVsphereContext(ctx)) throw new InputError(`${ctx.gen} is a backup of a ${ctx.machine.kind}, not of a vSphere VM: it cannot be restored on vCenter ${this.location}`);
    return prepareVmRestore(this.session, transport, ctx, request);
  }
}

function isVsphereContext(ctx: MachineRestoreContext): ctx is MachineRestoreContext<VsphereMachine> {
  return ctx.machine.kind === 'vsphere-vm';
}
