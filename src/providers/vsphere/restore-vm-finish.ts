/** How a restore ends: the VM powered on when asked. */
import { IoError, withNote } from '../../errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { powerOnVm } from '../../vsphere/vm-lifecycle.js';
import type { RestoreContext } from './restore-vm-context.js';

export async function powerOnIfAsked(ctx: RestoreContext, vm: VmRef): Promise<boolean> {
  if (!ctx.req.powerOn) return false;
  if (ctx.req.signal?.aborted) throw new IoError(`powering on VM ${vm.name} was interrupted (${String(ctx.req.signal.reason)}): the VM was restored and verified, and is left powered off`);
  ctx.emit({ type: 'step', message: `powering on VM ${vm.name}` });
  try {
    await powerOnVm(ctx.req.session, vm.ref, `powering on VM ${vm.name}`);
  } catch (err) {
    // The VM is complete and verified: keep it, and say so.
    throw withNote(err, `VM ${vm.name} was restored and verified, and is left powered off`);
  }
  return true;
}
