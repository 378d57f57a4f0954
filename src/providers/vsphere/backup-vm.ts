/**
 * A VM, online, as the vSphere provider backs it up: remove vmbkp snapshots a killed run
 * left behind, take a snapshot named after the new generation, open every disk as the
 * snapshot froze it, and remove the snapshot when the job ends it — in every outcome.
 * The generation itself is the job's (jobs/backup-machine.ts).
 */
import { abortLeftImportLeases } from '../../vsphere/import-lease-record.js';
import { InputError, IoError, VmbkpError, describeCause, withNote } from '../../errors.js';
import { failpoint } from '../../failpoints.js';
import type { DiskSource } from '../../sources/types.js';
import type { SnapshotDisk } from '../../sources/vsphere.js';
import { type VmRef, findVm } from '../../vsphere/inventory.js';
import { faultOf } from '../../vsphere/errors.js';
import { ovfDescriptor } from '../../vsphere/ovf.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { SNAPSHOT_PREFIX, backupSnapshotDescription, leaseField } from '../../vsphere/snapshot-owner.js';
import { abortLeftLeases } from './nfc-leftovers.js';
import { snapshotGoneError, snapshotStillThere, startHeartbeat } from './snapshot-heartbeat.js';
import { judgeVmbkpSnapshot, vcenterClock } from './snapshot-orphans.js';
import {
  type VirtualDiskInfo, disksOf, removeSnapshot, snapshotGone, snapshotsOf, unsnapshottable,
} from '../../vsphere/vm.js';
import { MoRef, type XmlNode, boolAt, textAt } from '../../vsphere/xml.js';
import type { BeginBackupOptions, Consistency, MachineBackup, MachineToBackUp, ProviderEvent } from '../machine-provider.js';
import { activateChangeTracking, turnOnChangeTracking } from './change-tracking.js';
import { consolidateIfNeeded } from './consolidation.js';
import { takeBackupSnapshot } from './consistency.js';
import { assessChangeTrust, leaveBackupMark } from './change-trust.js';
import { readVmConfigFiles } from './vm-config-files.js';
import type { MachineFileRef } from '../../repository/machine-files.js';
import { explainingMoves, guardAgainstMigration, movedWhileRead, releaseLeftoverGuard } from './migration-guard.js';

export { SNAPSHOT_PREFIX };

export type OpenDisk = (d: SnapshotDisk) => Promise<DiskSource>;

/** What a generation of a VM records about the machine (the manifest's `machine`, kind `vsphere-vm`). */
export interface VsphereMachine {
  readonly kind: 'vsphere-vm';
  readonly vcenter: string;
  readonly moref: string;
  readonly name: string;
  /** vCenter's instance UUID of the VM (`config.instanceUuid`): a recreated or cloned VM of the same name has another. */
  readonly instanceUuid?: string;
  readonly snapshot: string;
  /** How consistent the snapshot's disks are (consistency.ts); absent in generations made before it was recorded. */
  readonly consistency?: Consistency;
  readonly changeTracking: boolean;
  readonly disks: readonly {
    readonly name: string; readonly key: number; readonly label: string; readonly fileName: string;
    readonly controllerKey: number; readonly unitNumber: number; readonly capacity: number;
    readonly diskMode: string; readonly thinProvisioned?: boolean; readonly skipped?: string;
  }[];
  /** The VM's configuration at snapshot time, as vCenter returned it (XML as a JSON tree). */
  readonly config: XmlNode;
  /** An OVF descriptor of the VM without its disks. */
  readonly ovf: string;
  /**
   * The VM's `.vmx` (role `config`) and nvram file (role `nvram`), saved as blobs at the
   * snapshot (vm-config-files.ts); absent in generations made before they were saved.
   */
  readonly files?: readonly MachineFileRef[];
}

/** A backup set's name from a VM name: characters sets cannot hold become "_". */
export function setNameForVm(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]/, '_').slice(0, 128);
  return s === '' ? '_' : s;
}

/** Removes vmbkp snapshots left by killed runs; refuses when a live run owns one (snapshot-orphans.ts). */
async function removeOrphans(session: VsphereSession, vm: VmRef, snapshotProp: XmlNode | undefined, warn: (m: string) => void): Promise<void> {
  const clock = vcenterClock(session);
  for (const s of snapshotsOf(snapshotProp).filter((x) => x.name.startsWith(SNAPSHOT_PREFIX)).reverse()) {
    const verdict = await judgeVmbkpSnapshot(vm.name, s, clock);
    if (!verdict.orphan) throw new InputError(verdict.refusal);
    warn(`removing snapshot ${s.name} of VM ${vm.name}, left by an earlier run${verdict.detail}`);
    await abortLeftLeases(session, vm.name, s, warn); // an unfinished export lease blocks the removal
    await removeSnapshot(session, s.ref, `removing snapshot ${s.name} of VM ${vm.name}`).catch(async (err: unknown) => {
      if (!(await snapshotGone(session, vm.ref, s.ref))) throw err; // gone: its deltas are consolidated before the backup
    });
  }
}

function machineDisk(d: VirtualDiskInfo, skipped?: string): VsphereMachine['disks'][number] {
  return {
    name: String(d.key), key: d.key, label: d.label, fileName: d.fileName, controllerKey: d.controllerKey,
    unitNumber: d.unitNumber, capacity: d.capacity, diskMode: d.diskMode,
    ...(d.thinProvisioned !== undefined ? { thinProvisioned: d.thinProvisioned } : {}),
    ...(skipped ? { skipped } : {}),
  };
}

/** Tries to remove our snapshot this often, waiting this long times the attempt between tries. */
const SNAPSHOT_REMOVAL_ATTEMPTS = 3;
const SNAPSHOT_REMOVAL_BACKOFF_MS = 500;

/** Removes our snapshot, retrying: a snapshot left behind costs the VM's datastore space and speed. */
async function removeOurSnapshot(session: VsphereSession, vm: VmRef, snapshot: MoRef, name: string): Promise<void> {
  let last: unknown;
  for (let attempt = 1; attempt <= SNAPSHOT_REMOVAL_ATTEMPTS; attempt++) {
    try {
      await removeSnapshot(session, snapshot, `removing snapshot ${name} of VM ${vm.name}`);
      return;
    } catch (err) {
      last = err;
      // A stuck task: another try would only queue behind it.
      if (faultOf(err) === 'Timeout') throw new IoError(`${describeCause(err)}; the next vmbkp run on this VM removes the snapshot`, { cause: err });
      if (err instanceof VmbkpError && err.code === 'AUTH') break; // a refusal stays one: asking again changes nothing
      // A removal that failed while consolidating has still taken the snapshot out: done (the deltas are consolidated next).
      if (await snapshotGone(session, vm.ref, snapshot).catch(() => false)) return;
      await new Promise((r) => setTimeout(r, SNAPSHOT_REMOVAL_BACKOFF_MS * attempt));
    }
  }
  const code = last instanceof VmbkpError && last.code === 'AUTH' ? 'AUTH' : 'IO';
  throw new VmbkpError(code, `removing snapshot ${name} of VM ${vm.name} failed: ${describeCause(last)}; the next vmbkp run on this VM removes it`, { cause: last });
}

/**
 * Finds the VM (a name or moref), removes the snapshots killed runs left, turns CBT on when
 * asked and the VM has no snapshots of its own (or warns that it is off).
 */
export async function prepareVmBackup(session: VsphereSession, selector: string, opts: { readonly enableCbt: boolean },
  emit: (e: ProviderEvent) => void): Promise<MachineToBackUp> {
  const warn = (message: string) => emit({ type: 'warning', message });
  await abortLeftImportLeases(session, warn); // a killed nfc restore's lease would hold its VM until it times out
  const vm = await findVm(session, selector);
  const set = setNameForVm(vm.name);
  const props = await retrieveOne(session, vm.ref, ['config', 'snapshot']);
  await removeOrphans(session, vm, props.get('snapshot'), warn);
  await releaseLeftoverGuard(session, vm, warn); // after removeOrphans: no live run holds the VM

  if (boolAt(props.get('config'), 'changeTrackingEnabled') !== true) {
    if (opts.enableCbt) {
      // Not on leftover deltas either: a powered-off VM starts tracking on the disks it runs on.
      await consolidateIfNeeded(session, vm, 'an earlier snapshot removal', emit);
      await turnOnChangeTracking(session, vm, props.get('snapshot'), emit);
    } else {
      warn(`changed-block tracking is off on VM ${vm.name}: every backup reads whole disks (turn it on with --enable-cbt)`);
    }
  }
  return { name: vm.name, id: vm.ref.value, set };
}

/**
 * Consolidates leftover deltas and activates CBT waiting for a stun (change-tracking.ts),
 * takes the snapshot `vmbkp-<generation id>` and opens the disks it froze through the
 * transport. A failure after the snapshot exists closes what was opened and removes it.
 */
export async function beginVmBackup(session: VsphereSession, openDisk: OpenDisk, target: MachineToBackUp, opts: BeginBackupOptions,
  emit: (e: ProviderEvent) => void): Promise<MachineBackup> {
  const vm: VmRef = { ref: new MoRef('VirtualMachine', target.id), name: target.name };
  const warn = (message: string) => emit({ type: 'warning', message });
  const snapName = `${SNAPSHOT_PREFIX}${opts.id}`;
  // Consolidated first: CBT activated while the VM runs on a delta would not know the data under it.
  await consolidateIfNeeded(session, vm, 'an earlier snapshot removal', emit);
  await activateChangeTracking(session, vm, opts.excludeDisks, emit);
  emit({ type: 'step', message: `creating snapshot ${snapName} of VM ${vm.name}` });
  let snapshot: MoRef;
  let consistency: Consistency;
  const description = backupSnapshotDescription();
  // No storage vMotion or host move while the snapshot is read (migration-guard.ts).
  const releaseGuard = await guardAgainstMigration(session, vm, warn);
  try {
    ({ snapshot, consistency } = await takeBackupSnapshot(session, vm, snapName, {
      description, memory: opts.memory, quiesce: opts.quiesce,
    }, warn));
  } catch (err) {
    // A failed task may still have left the snapshot: look for it by name.
    const after = await retrieveOne(session, vm.ref, ['snapshot']).catch(() => undefined);
    for (const s of snapshotsOf(after?.get('snapshot')).filter((x) => x.name === snapName)) {
      await removeSnapshot(session, s.ref, `removing snapshot ${snapName} of VM ${vm.name}`).catch(() => {});
    }
    await releaseGuard();
    throw err;
  }

  const sources: DiskSource[] = [];
  const heartbeat = startHeartbeat(session, vm, snapshot, snapName, description, warn);
  let gone = false; // removed under us: nothing to remove
  const end = async () => {
    try {
      await heartbeat.stop();
      for (const s of sources) await s.close().catch(() => {});
      if (gone) return;
      emit({ type: 'step', message: `removing snapshot ${snapName} of VM ${vm.name}` });
      await removeOurSnapshot(session, vm, snapshot, snapName);
      await consolidateIfNeeded(session, vm, `removing snapshot ${snapName}`, emit);
    } finally {
      await releaseGuard();
    }
  };
  const opened = new Map<number, string>(); // disk key → the file it was opened at
  const beforeCommit = async () => {
    if (!(await snapshotStillThere(session, vm, snapshot, snapName))) {
      gone = true;
      throw snapshotGoneError(vm, snapshot, snapName);
    }
    const moved = await movedWhileRead(session, vm, snapshot, opened);
    if (moved) throw moved;
  };
  try {
    await failpoint('vm:snapshot-taken');
    // The snapshot's configuration lists its disks: without it (unreadable, or unset) the
    // generation would hold none or some, so the VM fails and nothing is committed.
    const config = (await retrieveOne(session, snapshot, ['config']).catch((err: unknown) => {
      throw withNote(err, `the configuration of snapshot ${snapName} of VM ${vm.name}; no generation is committed`);
    })).get('config');
    if (config === undefined) throw new IoError(`snapshot ${snapName} of VM ${vm.name} has no configuration on ${session.host}: its disks are unknown; no generation is committed`);
    const instanceUuid = textAt(config, 'instanceUuid');
    // Judged on the snapshot's configuration, then the mark is left on the VM: a snapshot
    // with the new mark is then always one taken after this backup's.
    const trust = assessChangeTrust({ vmName: vm.name, set: target.set, id: opts.id, config, previous: opts.previous, repositoryId: opts.repositoryId });
    trust.warnings.forEach(warn);
    await leaveBackupMark(session, vm, trust, warn);
    const machineDisks: VsphereMachine['disks'][number][] = [];
    const disks: { name: string; source: DiskSource; changesVoid?: string }[] = [];
    for (const disk of disksOf(config)) {
      if (opts.excludeDisks.includes(disk.key)) {
        machineDisks.push(machineDisk(disk, 'excluded by the recipe'));
        continue;
      }
      const skip = unsnapshottable(disk);
      if (skip) {
        warn(`skipping disk ${disk.key} (${disk.label}) of VM ${vm.name}: ${skip}`);
        machineDisks.push(machineDisk(disk, skip));
        continue;
      }
      const noteLease = (lease: MoRef) => heartbeat.addField(leaseField(lease.value));
      const source = explainingMoves(await openDisk({ session, vm, snapshot, disk, noteLease }), () => movedWhileRead(session, vm, snapshot, opened));
      sources.push(source);
      opened.set(disk.key, disk.fileName);
      const changesVoid = trust.diskVoid(disk);
      disks.push({ name: String(disk.key), source, ...(changesVoid !== undefined ? { changesVoid } : {}) });
      machineDisks.push(machineDisk(disk));
    }
    const files = await readVmConfigFiles(session, vm, warn);
    const record: VsphereMachine = {
      kind: 'vsphere-vm', vcenter: session.host, moref: vm.ref.value, name: vm.name,
      ...(instanceUuid ? { instanceUuid } : {}), snapshot: snapName, consistency,
      changeTracking: boolAt(config, 'changeTrackingEnabled') === true,
      disks: machineDisks, config: config ?? '', ovf: ovfDescriptor(config),
    };
    return { disks, record, files, end, beforeCommit };
  } catch (err) {
    try {
      await end();
    } catch (cleanup) {
      warn(describeCause(cleanup));
    }
    throw err;
  }
}
