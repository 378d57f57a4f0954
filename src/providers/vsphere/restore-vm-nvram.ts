/**
 * Puts a generation's saved nvram file (the firmware's settings: EFI boot entries, Secure
 * Boot keys) back into a restored VM's directory before it is powered on, as the VDDK
 * programming guide's "Restoring the Virtual BIOS or UEFI" does: without it an EFI VM
 * starts with default settings and may not find its boot loader.
 */
import { withNote } from '../../errors.js';
import { readMachineFile } from '../../repository/machine-files.js';
import type { Repository } from '../../repository/repository.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import { configFilesOf, fileNameOf, setNvramFile, writeDatastoreFile } from '../../vsphere/vm-files.js';
import { text } from '../../vsphere/xml.js';
import type { RestoreContext, SavedNvram } from './restore-vm-context.js';
import type { VsphereMachine } from './stored-vm.js';

/** The generation's nvram, read and checked before anything is made; undefined when it saved none (an older vmbkp, a VM never powered on). */
export async function savedNvram(repo: Repository, machine: VsphereMachine, gen: string): Promise<SavedNvram | undefined> {
  const ref = machine.files?.find((f) => f.role === 'nvram');
  if (!ref) return undefined;
  return { name: ref.name, sha256: ref.sha256, data: await readMachineFile(repo, ref, `reading the nvram file ${ref.name} of ${gen}`) };
}

/**
 * Writes the saved nvram over the VM's nvram file (a VM that has none yet gets
 * `<vmx name>.nvram` beside its .vmx); a VM the restore created, or one without an nvram
 * file, gets its configuration's `nvram` pointed at it.
 * The VM is powered off: the restore created it, or --overwrite checked it.
 */
export async function restoreNvram(ctx: RestoreContext, vm: VmRef, dcPath: string, created: boolean): Promise<void> {
  const nvram = ctx.nvram;
  if (!nvram) return;
  const { session } = ctx.req;
  const props = await retrieveOne(session, vm.ref, ['config.files.vmPathName', 'layoutEx']);
  const existing = configFilesOf(props.get('layoutEx')).find((f) => f.role === 'nvram')?.path;
  const vmx = text(props.get('config.files.vmPathName'));
  const target = existing ?? vmx.replace(/\.vmx$/i, '.nvram');
  const what = `writing the saved nvram file ${nvram.name} of ${ctx.gen} to ${target} (VM ${vm.name})`;
  ctx.emit({ type: 'step', message: `restoring the firmware settings of VM ${vm.name}: ${target}` });
  try {
    await writeDatastoreFile(session, dcPath, target, nvram.data, what);
    if (created || !existing) await setNvramFile(session, vm.ref, fileNameOf(target), `pointing VM ${vm.name} at its nvram file ${target}`);
  } catch (err) {
    // Created: the job then removes the VM. Overwritten: the job says what the VM is left with.
    throw created ? withNote(err, 'the VM would start with its firmware\'s default settings') : err;
  }
}
