/**
 * Storage vMotion or a host move during a backup changes where the VM's disks are while
 * vmbkp reads them. So a backup disables RelocateVM_Task and MigrateVM_Task on the VM
 * (AuthorizationManager.DisableMethods, source "vmbkp") before it takes its snapshot and
 * enables them again when it has removed it, in every outcome; a vCenter user who tries to
 * move the VM meanwhile gets MethodDisabled. A killed run's are enabled again by the next
 * backup of the VM, once its orphan check has made sure that no live run holds the VM.
 */
import { describeCause } from '../../errors.js';
import { disableMethods, disabledMethodsOf, enableMethods } from '../../vsphere/disabled-methods.js';
import type { VmRef } from '../../vsphere/inventory.js';
import type { VsphereSession } from '../../vsphere/session.js';

export const MIGRATION_METHODS: readonly string[] = ['RelocateVM_Task', 'MigrateVM_Task'];
/** The sourceId vmbkp disables methods under: vCenter keeps one list per source. */
export const GUARD_SOURCE = 'vmbkp';
const REASON = 'vmbkp is backing up this virtual machine';

/** Enables the migration methods a killed run left disabled (those another source disabled stay so). */
export async function releaseLeftoverGuard(session: VsphereSession, vm: VmRef, warn: (m: string) => void): Promise<void> {
  try {
    const disabled = (await disabledMethodsOf(session, vm.ref)).filter((m) => MIGRATION_METHODS.includes(m));
    if (disabled.length === 0) return;
    await enableMethods(session, vm.ref, disabled, GUARD_SOURCE);
    const still = await disabledMethodsOf(session, vm.ref);
    const enabled = disabled.filter((m) => !still.includes(m));
    if (enabled.length > 0) warn(`enabled ${enabled.join(' and ')} of VM ${vm.name} again: an earlier vmbkp run that did not finish had disabled them`);
  } catch (err) {
    warn(`checking whether an earlier vmbkp run left RelocateVM_Task and MigrateVM_Task of VM ${vm.name} disabled failed: ${describeCause(err)}`);
  }
}

/**
 * Disables the migration methods for the backup; the function returned enables them again
 * (once, however often it is called). When they cannot be disabled (no Global.DisableMethods
 * privilege, an ESXi host without vCenter) the backup goes on with a warning.
 */
export async function guardAgainstMigration(session: VsphereSession, vm: VmRef, warn: (m: string) => void): Promise<() => Promise<void>> {
  try {
    await disableMethods(session, vm.ref, MIGRATION_METHODS, GUARD_SOURCE, REASON);
  } catch (err) {
    warn(`disabling RelocateVM_Task and MigrateVM_Task of VM ${vm.name} for its backup failed (${describeCause(err)}): `
      + 'a storage vMotion or host move during the backup fails it');
    return async () => {};
  }
  let released: Promise<void> | undefined;
  return () => released ??= enableMethods(session, vm.ref, MIGRATION_METHODS, GUARD_SOURCE).catch((err: unknown) => {
    warn(`enabling RelocateVM_Task and MigrateVM_Task of VM ${vm.name} again after its backup failed (${describeCause(err)}); `
      + 'the next vmbkp backup of it enables them, or enable them in vCenter (MOB: AuthorizationManager.EnableMethods, source "vmbkp")');
  });
}
