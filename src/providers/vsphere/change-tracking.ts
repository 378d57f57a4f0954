/**
 * Turning changed-block tracking on, the way VMware says it must be done:
 * - only while the VM has no snapshots: tracking started on a VM running on a snapshot's
 *   delta knows nothing of the data under it (KB 1020128: "zero snapshots when CBT is
 *   enabled, for a clean start"), so its "all allocated areas" answer would leave data out;
 * - on a powered-on VM it takes effect at the next stun-unstun cycle (VDDK programming
 *   guide, "Enable Changed Block Tracking"); until then the disks carry no changeId and a
 *   backup could not be followed by an incr. vmbkp runs that cycle itself: a short snapshot.
 * A VM backup never fails over CBT: when it cannot be on, the backup reads whole disks.
 */
import { randomBytes } from 'node:crypto';
import { IoError, VmbkpError, describeCause } from '../../errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { SNAPSHOT_PREFIX, backupSnapshotDescription } from '../../vsphere/snapshot-owner.js';
import {
  type SnapshotInfo, createSnapshot, disksOf, enableChangeTracking, removeSnapshot, snapshotGone, snapshotsOf, unsnapshottable,
} from '../../vsphere/vm.js';
import { type MoRef, type XmlNode, boolAt, textAt } from '../../vsphere/xml.js';
import type { ProviderEvent } from '../machine-provider.js';
import { consolidateIfNeeded } from './consolidation.js';

/** The VM's snapshots that are not vmbkp's: the user's, which vmbkp never removes. */
export function userSnapshots(snapshotProp: XmlNode | undefined): SnapshotInfo[] {
  return snapshotsOf(snapshotProp).filter((s) => !s.name.startsWith(SNAPSHOT_PREFIX));
}

/** Why change tracking would not be turned on now, or undefined when it can be. */
export function cannotEnableWhy(vmName: string, snapshots: readonly SnapshotInfo[]): string | undefined {
  if (snapshots.length === 0) return undefined;
  return `VM ${vmName} has snapshots (${snapshots.map((s) => s.name).join(', ')}), and change tracking turned on `
    + 'while a VM has snapshots does not know the data under them (VMware KB 1020128)';
}

/**
 * Turns change tracking on (`--enable-cbt`) unless the VM has snapshots of its own; then
 * it warns and leaves it off: a later run turns it on once they are gone.
 */
export async function turnOnChangeTracking(session: VsphereSession, vm: VmRef, snapshotProp: XmlNode | undefined,
  emit: (e: ProviderEvent) => void): Promise<void> {
  const why = cannotEnableWhy(vm.name, userSnapshots(snapshotProp));
  if (why) {
    emit({
      type: 'warning',
      message: `not enabling changed-block tracking: ${why}; a later run with --enable-cbt enables it once the VM has no snapshots; this backup reads whole disks`,
    });
    return;
  }
  emit({ type: 'step', message: `enabling changed-block tracking on VM ${vm.name}` });
  await enableChangeTracking(session, vm.ref, vm.name);
}

/** The disks that would be backed up but carry no changeId although change tracking is on. */
function untrackedDisks(config: XmlNode | undefined, excludeDisks: readonly number[]): number[] {
  if (boolAt(config, 'changeTrackingEnabled') !== true) return [];
  return disksOf(config).filter((d) => !excludeDisks.includes(d.key) && !unsnapshottable(d) && !d.changeId).map((d) => d.key);
}

/**
 * When change tracking is on but the running VM's disks carry no changeId yet (turned on,
 * no stun since), runs the stun-unstun cycle that makes it take effect: a snapshot
 * `vmbkp-cbt-…` created and removed at once (named and described like vmbkp's backup
 * snapshots, so a run killed in between leaves an orphan the next run removes). Warns when
 * the disks still carry none; the backup then reads whole disks.
 */
export async function activateChangeTracking(session: VsphereSession, vm: VmRef, excludeDisks: readonly number[],
  emit: (e: ProviderEvent) => void): Promise<void> {
  const props = await retrieveOne(session, vm.ref, ['config', 'runtime']);
  if (textAt(props.get('runtime'), 'powerState') !== 'poweredOn') return;
  if (untrackedDisks(props.get('config'), excludeDisks).length === 0) return;

  const name = `${SNAPSHOT_PREFIX}cbt-${randomBytes(4).toString('hex')}`;
  emit({ type: 'step', message: `activating changed-block tracking on VM ${vm.name} (snapshot ${name}, created and removed)` });
  let snapshot: MoRef | undefined;
  try {
    snapshot = await createSnapshot(session, vm.ref, vm.name, name, { description: backupSnapshotDescription() });
  } catch (err) {
    // A failed task may still have made it: remove it by name, or vmbkp's snapshot would sit on it.
    for (const s of snapshotsOf((await retrieveOne(session, vm.ref, ['snapshot'])).get('snapshot')).filter((x) => x.name === name)) {
      await removeSnapshot(session, s.ref, `removing snapshot ${name} of VM ${vm.name}`);
    }
    emit({ type: 'warning', message: `changed-block tracking on VM ${vm.name} could not be activated (${describeCause(err)}): this backup reads whole disks` });
    return;
  }
  try {
    await removeSnapshot(session, snapshot, `removing snapshot ${name} of VM ${vm.name}`);
  } catch (err) {
    if (!(await snapshotGone(session, vm.ref, snapshot))) {
      // A refused privilege keeps its code (exit 7): the user must grant it.
      const code = err instanceof VmbkpError && err.code === 'AUTH' ? 'AUTH' : 'IO';
      throw new VmbkpError(code, `${describeCause(err)}; the next vmbkp run on this VM removes it`, { cause: err });
    }
  }
  await consolidateIfNeeded(session, vm, `removing snapshot ${name}`, emit);
  const still = untrackedDisks((await retrieveOne(session, vm.ref, ['config'])).get('config'), excludeDisks);
  if (still.length > 0) {
    emit({ type: 'warning', message: `changed-block tracking is on for VM ${vm.name} but disks ${still.join(', ')} report no change id after a snapshot: this backup reads them whole` });
  }
}
