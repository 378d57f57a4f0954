/**
 * A disk of a VM being restored, as a DiskTarget that can also read back what it wrote
 * (a restore checks every chunk it wrote against the backup's digests).
 */
import type { VmRef } from '../vsphere/inventory.js';
import type { VsphereSession } from '../vsphere/session.js';
import type { VirtualDiskInfo } from '../vsphere/vm.js';
import type { RestoreTarget } from './types.js';

/** One disk of the VM a restore writes: its device as vCenter describes it now. */
export interface VmDisk {
  readonly session: VsphereSession;
  readonly vm: VmRef;
  readonly disk: VirtualDiskInfo;
  /** Inventory path of the VM's datacenter (the dcPath of datastore URLs). */
  readonly datacenterPath: string;
}

/** A disk of a VM opened for a restore: written, then read back. */
export type VmDiskTarget = RestoreTarget;

/** How a transport opens a VM's disk for writing. */
export type OpenVmDisk = (d: VmDisk) => Promise<VmDiskTarget>;

export function vmDiskLabel(d: VmDisk): string {
  return `disk ${d.disk.key} of VM ${d.vm.name}`;
}
