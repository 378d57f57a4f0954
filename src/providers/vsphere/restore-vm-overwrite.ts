/** A restore over an existing VM (`overwrite`): only its disks and nvram are written; it is never destroyed. */
import { InputError, withNote } from '../../errors.js';
import { datacenterPathOf } from '../../vsphere/datastore.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import { disksOf, snapshotsOf } from '../../vsphere/vm.js';
import { text } from '../../vsphere/xml.js';
import type { MachineUnderRestore } from '../machine-provider.js';
import type { RestoreContext, RestoreOutcome } from './restore-vm-context.js';
import { disksToRestore, restoredDisks } from './restore-vm-disks.js';
import { powerOnIfAsked } from './restore-vm-finish.js';
import { restoreNvram } from './restore-vm-nvram.js';
import { voidChangeHistory } from './change-trust.js';

/**
 * --overwrite onto an existing VM: powered off, no snapshots, the same disks (count and
 * capacities, in device order). Before anything is written its backup marks go and its
 * change tracking is reset (change-trust.ts); once they are written and checked, its nvram is
 * put back (restore-vm-nvram.ts). A failure while the disks are written
 * leaves the VM as it is, with a note saying its disks are partly overwritten.
 */
export async function overwriteVm(ctx: RestoreContext, vm: VmRef): Promise<MachineUnderRestore<RestoreOutcome>> {
  const { req, gen, plans } = ctx;
  const ignored = (['datastore', 'host', 'folder', 'resourcePool', 'network'] as const).filter((k) => req[k] !== undefined);
  if (ignored.length > 0 || req.keepIdentity) {
    ctx.warn(`VM ${vm.name} exists: only its disks and nvram are written; ${[...ignored.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`), ...(req.keepIdentity ? ['--keep-identity'] : [])].join(', ')} ignored`);
  }
  const props = await retrieveOne(req.session, vm.ref, ['config', 'runtime.powerState', 'snapshot']);
  const state = text(props.get('runtime.powerState'));
  if (state !== 'poweredOff') {
    const words: Record<string, string> = { poweredOn: 'powered on', suspended: 'suspended' };
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: the VM is ${words[state] ?? 'not powered off'}; power it off first`);
  }
  if (snapshotsOf(props.get('snapshot')).length > 0) {
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: the VM has snapshots; remove them first`);
  }
  const current = disksOf(props.get('config'));
  const sizes = (xs: readonly number[]) => xs.map((n) => `${n}`).join(', ') || 'none';
  if (current.length !== plans.length || current.some((d, i) => d.capacity !== plans[i]!.stored.capacity)) {
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: its disks (${sizes(current.map((d) => d.capacity))} bytes) are not the backup's (${sizes(plans.map((p) => p.stored.capacity))} bytes)`);
  }
  const dcPath = await datacenterPathOf(req.session, vm.ref);
  // The uploads bypass the VM, so its change tracking need not see them: no backup may
  // take changes since an earlier generation as the truth about these disks.
  await voidChangeHistory(req.session, vm, props.get('config'), (message) => ctx.emit({ type: 'step', message }));
  let disksDone = false;
  return {
    disks: disksToRestore(ctx, vm, current, dcPath),
    // Once the disks are written and checked: a failed restore leaves the VM's own firmware settings.
    complete: async () => {
      disksDone = true;
      await restoreNvram(ctx, vm, dcPath, false);
    },
    abandon: async (err) => withNote(err, disksDone
      ? `VM ${vm.name}'s disks are the generation's, written and checked, but its nvram is its own: restore again`
      : `VM ${vm.name}'s disks are partly overwritten: restore again`),
    finish: async (written) => {
      const restored = restoredDisks(current, written);
      const poweredOn = await powerOnIfAsked(ctx, vm);
      return { vm: vm.name, moref: vm.ref.value, created: false, poweredOn, identity: 'kept', disks: restored };
    },
  };
}
