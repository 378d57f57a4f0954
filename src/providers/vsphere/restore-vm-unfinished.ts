/**
 * Restores that never finished, found under the target name before a restore starts:
 * removed when their process is gone, refused otherwise (see restore-marker.ts).
 */
import { AlreadyExistsError, describeCause } from '../../errors.js';
import { faultOf } from '../../vsphere/errors.js';
import { isThisProcess, ownerState } from '../../process-identity.js';
import { destroyVm } from '../../vsphere/vm-lifecycle.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { readRestoreMarker } from '../../vsphere/restore-marker.js';
import type { VmRestoreRequest } from './restore-vm-context.js';

/**
 * VMs of the target name that are restores which never finished (marked, see
 * restore-marker.ts): one left by a dead process of this host (pid gone, or running with
 * another start time) is removed, one whose process still runs, or that another host
 * made, is refused. Returns the other VMs.
 */
export async function removeIncompleteRestores(req: VmRestoreRequest, vms: readonly VmRef[], warn: (m: string) => void): Promise<VmRef[]> {
  const rest: VmRef[] = [];
  for (const vm of vms) {
    const m = await readRestoreMarker(req.session, vm.ref);
    if (!m) {
      rest.push(vm);
      continue;
    }
    const what = `VM ${vm.name} (${vm.ref.value}) is an unfinished restore by vmbkp process ${m.pid} on host ${m.host}, started ${m.started}`;
    const state = ownerState(m);
    if (state === 'unknown') throw new AlreadyExistsError(`${what}: if no restore runs there any more, remove that VM, then restore again`);
    if (state === 'alive' && !isThisProcess(m)) throw new AlreadyExistsError(`${what}, which still runs`);
    warn(`removing VM ${vm.name} (${vm.ref.value}): an unfinished restore by vmbkp process ${m.pid} of this host, started ${m.started}, whose process is gone`);
    try {
      await destroyVm(req.session, vm.ref, `removing the unfinished restore ${vm.name}`);
    } catch (err) {
      // An nfc restore killed mid-import leaves its import lease holding the VM; one recorded
      // in the state directory was aborted before (import-lease-record.ts), one that is not
      // (another host's, or the record lost) is freed only by its timeout.
      if (faultOf(err) !== 'InvalidState') throw err;
      throw new AlreadyExistsError(`${what}; it cannot be removed yet: ${describeCause(err)} (an nfc restore that was killed, whose import lease this host has no record of, leaves the lease holding the VM until vCenter times it out, about 5 minutes after the kill; then restore again, and the VM is removed if vCenter has not removed it)`, { cause: err });
    }
  }
  return rest;
}
