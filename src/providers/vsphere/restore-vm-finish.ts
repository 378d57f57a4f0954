/** How a restore ends: the VM powered on when asked, and errors that say what became of the VM. */
import { IoError, VmbkpError, describeCause } from '../../errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { powerOnVm } from '../../vsphere/vm-lifecycle.js';
import type { RestoreContext } from './restore-vm-context.js';

/** The same error with a note on what became of the VM; its code (and exit code) is kept. */
export function withNote(err: unknown, note: string): Error {
  if (err instanceof VmbkpError) return new VmbkpError(err.code, `${err.message} (${note})`, { cause: err });
  return new IoError(`${describeCause(err)} (${note})`, { cause: err });
}

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
