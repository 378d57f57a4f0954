/**
 * Disk consolidation. When ESXi deletes a snapshot but fails to merge its delta disk, the
 * snapshot is gone from the tree while the VM keeps running on the delta, and vSphere sets
 * `runtime.consolidationNeeded` ("Virtual machine disks consolidation is needed"). Every
 * later snapshot then sits on that leftover delta: vmbkp could not read its disks as a base
 * disk, and the chain would grow with each run. So vmbkp consolidates before taking its
 * snapshot and after removing it.
 */
import { IoError, describeCause } from '../../errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { consolidateDisks } from '../../vsphere/vm.js';
import { boolAt } from '../../vsphere/xml.js';
import type { ProviderEvent } from '../machine-provider.js';

async function consolidationNeeded(session: VsphereSession, vm: VmRef): Promise<boolean> {
  return boolAt((await retrieveOne(session, vm.ref, ['runtime'])).get('runtime'), 'consolidationNeeded') === true;
}

/**
 * Consolidates the VM's disks when vSphere says they need it; `left` says what left the
 * deltas ("an earlier snapshot removal", "removing snapshot vmbkp-…"). Throws an IoError
 * naming what the administrator must do when consolidation fails or does not clear the flag.
 */
export async function consolidateIfNeeded(session: VsphereSession, vm: VmRef, left: string, emit: (e: ProviderEvent) => void): Promise<void> {
  if (!(await consolidationNeeded(session, vm))) return;
  emit({ type: 'warning', message: `VM ${vm.name} needs disk consolidation (${left} left delta disks that no snapshot uses): consolidating them` });
  emit({ type: 'step', message: `consolidating the disks of VM ${vm.name}` });
  const failed = (cause: string, err?: unknown) => new IoError(
    `VM ${vm.name} needs disk consolidation (${left} left delta disks that no snapshot uses) and ${cause}; `
    + 'until its disks are consolidated no backup of it can read them: fix the cause (datastore free space, locked files), '
    + 'then consolidate them (vSphere Client: the VM > Snapshots > Consolidate) or run vmbkp again', err === undefined ? undefined : { cause: err });
  try {
    await consolidateDisks(session, vm.ref, vm.name);
  } catch (err) {
    throw failed(`ConsolidateVMDisks_Task failed: ${describeCause(err)}`, err);
  }
  if (await consolidationNeeded(session, vm)) throw failed('ConsolidateVMDisks_Task succeeded but vSphere still reports it');
}
