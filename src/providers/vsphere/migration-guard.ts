/**
 * Storage vMotion or a host move during a backup changes where the VM's disks are while
 * vmbkp reads them. So a backup disables RelocateVM_Task and MigrateVM_Task on the VM
 * (AuthorizationManager.DisableMethods, source "vmbkp") before it takes its snapshot and
 * enables them again when it has removed it, in every outcome; a vCenter user who tries to
 * move the VM meanwhile gets MethodDisabled. A killed run's are enabled again by the next
 * backup of the VM, once its orphan check has made sure that no live run holds the VM.
 * Without the guard (no privilege), a backup whose disks moved while it read them commits
 * nothing and says so (movedWhileRead, explainingMoves).
 */
import { IoError, describeCause } from '../../errors.js';
import type { DiskSource } from '../../sources/types.js';
import { disableMethods, disabledMethodsOf, enableMethods } from '../../vsphere/disabled-methods.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { disksOf } from '../../vsphere/vm.js';
import type { MoRef } from '../../vsphere/xml.js';

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

/**
 * Whether the snapshot's disks are still where the backup opened them: when the guard
 * could not be set, a storage vMotion may have moved them while they were read, and what
 * was read may come from two places. The error names the first disk that moved.
 */
export async function movedWhileRead(session: VsphereSession, vm: VmRef, snapshot: MoRef, opened: ReadonlyMap<number, string>): Promise<IoError | undefined> {
  const now = disksOf((await retrieveOne(session, snapshot, ['config'])).get('config'));
  for (const d of now) {
    const was = opened.get(d.key);
    if (was === undefined || was === d.fileName) continue;
    return new IoError(`VM ${vm.name} was moved while its backup read it (disk ${d.key}: ${was} is now ${d.fileName}): `
      + 'its disks may have been read from two places, so no generation is committed; run the backup again');
  }
  return undefined;
}

/**
 * The source with its read failures explained: a disk read that fails because the VM was
 * moved (its files are gone from the old place) fails with movedWhileRead's error instead.
 */
export function explainingMoves(source: DiskSource, moved: () => Promise<IoError | undefined>): DiskSource {
  return {
    description: source.description,
    size: source.size,
    allocated: (offset, length) => source.allocated(offset, length),
    changedSince: (token) => source.changedSince(token),
    changeToken: () => source.changeToken(),
    read: async (offset, length, into) => {
      try {
        return await source.read(offset, length, into);
      } catch (err) {
        const because = await moved().catch(() => undefined);
        if (because) throw new IoError(because.message, { cause: err });
        throw err;
      }
    },
    close: () => source.close(),
  };
}
