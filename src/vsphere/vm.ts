/**
 * What vmbkp reads from and does to a VM: its virtual disks (from a configuration's
 * device list), snapshots, enabling change tracking, and the changed areas of a disk.
 */
import { InputError } from '../errors.js';
import { VsphereFaultError } from './errors.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import { MoRef, type XmlNode, at, boolAt, child, children, moRefOf, numberAt, textAt, xsiType } from './xml.js';

export interface VirtualDiskInfo {
  readonly key: number;
  readonly label: string;
  readonly capacity: number;
  readonly controllerKey: number;
  readonly unitNumber: number;
  /** Datastore path of the descriptor, "[ds1] web01/web01.vmdk". */
  readonly fileName: string;
  readonly backingType: string;
  /** persistent, independent_persistent, independent_nonpersistent, … */
  readonly diskMode: string;
  readonly changeId: string | undefined;
  /** physicalMode or virtualMode, for raw device mappings. */
  readonly compatibilityMode: string | undefined;
  readonly thinProvisioned: boolean | undefined;
  readonly datastore: MoRef | undefined;
  /** The backing has a parent: this disk file is a delta of an older snapshot. */
  readonly hasParent: boolean;
}

export function disksOf(config: XmlNode | undefined): VirtualDiskInfo[] {
  const devices = children(at(config, 'hardware'), 'device').filter((d) => xsiType(d) === 'VirtualDisk');
  return devices.map((d) => {
    const backing = child(d, 'backing');
    const bytes = numberAt(d, 'capacityInBytes');
    const kb = numberAt(d, 'capacityInKB') ?? 0;
    return {
      key: numberAt(d, 'key') ?? 0,
      label: textAt(d, 'deviceInfo.label') ?? `disk ${numberAt(d, 'key')}`,
      capacity: bytes && bytes > 0 ? bytes : kb * 1024,
      controllerKey: numberAt(d, 'controllerKey') ?? 0,
      unitNumber: numberAt(d, 'unitNumber') ?? 0,
      fileName: textAt(backing, 'fileName') ?? '',
      backingType: xsiType(backing) ?? 'unknown',
      diskMode: textAt(backing, 'diskMode') ?? 'persistent',
      changeId: textAt(backing, 'changeId') || undefined,
      compatibilityMode: textAt(backing, 'compatibilityMode') || undefined,
      thinProvisioned: boolAt(backing, 'thinProvisioned'),
      datastore: moRefOf(child(backing, 'datastore')),
      hasParent: child(backing, 'parent') !== undefined,
    };
  });
}

/** Why a disk cannot be backed up through a snapshot, or undefined when it can. */
export function unsnapshottable(disk: VirtualDiskInfo): string | undefined {
  if (disk.diskMode.startsWith('independent')) return `it is ${disk.diskMode.replace('_', '-')} (snapshots do not include independent disks)`;
  if (disk.compatibilityMode === 'physicalMode') return 'it is a physical-mode raw device mapping (snapshots do not include it)';
  return undefined;
}

export interface SnapshotInfo {
  readonly ref: MoRef;
  readonly name: string;
  readonly created: string | undefined;
  readonly description: string | undefined;
  /** Whether vSphere really quiesced the guest for it (a request it could not honour leaves this false). */
  readonly quiesced: boolean | undefined;
  /** The VM's power state when it was taken: poweredOn, poweredOff or suspended. */
  readonly state: string | undefined;
}

/** Every snapshot in a VM's `snapshot` property, parents before children. */
export function snapshotsOf(snapshotProp: XmlNode | undefined): SnapshotInfo[] {
  const out: SnapshotInfo[] = [];
  const walk = (nodes: XmlNode[]) => {
    for (const n of nodes) {
      const ref = moRefOf(child(n, 'snapshot'));
      if (ref) {
        out.push({
          ref, name: textAt(n, 'name') ?? '', created: textAt(n, 'createTime'), description: textAt(n, 'description'),
          quiesced: boolAt(n, 'quiesced'), state: textAt(n, 'state'),
        });
      }
      walk(children(n, 'childSnapshotList'));
    }
  };
  walk(children(snapshotProp, 'rootSnapshotList'));
  return out;
}

export interface SnapshotOptions {
  readonly description?: string;
  readonly memory?: boolean;
  readonly quiesce?: boolean;
  readonly onProgress?: (percent: number) => void;
}

export async function createSnapshot(session: VsphereSession, vm: MoRef, vmName: string, name: string, opts: SnapshotOptions = {}): Promise<MoRef> {
  const res = await session.call('CreateSnapshot_Task', vm, {
    name,
    description: opts.description ?? '',
    memory: opts.memory ?? false,
    quiesce: opts.quiesce ?? false,
  });
  const result = await waitForTask(session, taskOf(res), {
    what: `creating snapshot ${name} of VM ${vmName}`,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const ref = moRefOf(result);
  if (!ref) throw new VsphereFaultError(`creating snapshot ${name} of VM ${vmName}: the task returned no snapshot`, 'InvalidResponse');
  return ref;
}

export async function removeSnapshot(session: VsphereSession, snapshot: MoRef, what: string): Promise<void> {
  const res = await session.call('RemoveSnapshot_Task', snapshot, { removeChildren: false, consolidate: true });
  await waitForTask(session, taskOf(res), { what });
}

/**
 * Whether the snapshot is no longer in the VM's tree: a removal whose task failed while
 * consolidating has still taken it out (the deltas it left are a consolidation's to merge).
 */
export async function snapshotGone(session: VsphereSession, vm: MoRef, snapshot: MoRef): Promise<boolean> {
  const prop = (await retrieveOne(session, vm, ['snapshot'])).get('snapshot');
  return !snapshotsOf(prop).some((s) => s.ref.value === snapshot.value);
}

/**
 * Turns changed-block tracking on. A powered-on VM picks it up at its next stun-unstun
 * cycle (a snapshot created or removed, a power on); until then its disks carry no changeId.
 */
export async function enableChangeTracking(session: VsphereSession, vm: MoRef, vmName: string): Promise<void> {
  const res = await session.call('ReconfigVM_Task', vm, { spec: { changeTrackingEnabled: true } });
  await waitForTask(session, taskOf(res), { what: `enabling changed-block tracking on VM ${vmName}` });
}

/** Merges the delta disks no snapshot uses (left by a failed consolidation) into their parents. */
export async function consolidateDisks(session: VsphereSession, vm: MoRef, vmName: string): Promise<void> {
  const res = await session.call('ConsolidateVMDisks_Task', vm, {});
  await waitForTask(session, taskOf(res), { what: `consolidating the disks of VM ${vmName}` });
}

export interface ChangedArea { readonly start: number; readonly length: number }

/**
 * The areas of a disk changed between `changeId` and `snapshot` ("*": every allocated
 * area). The server answers a window at a time; this loops until the whole disk is covered.
 */
export async function queryChangedDiskAreas(session: VsphereSession, vm: MoRef, snapshot: MoRef, deviceKey: number,
  capacity: number, changeId: string): Promise<ChangedArea[]> {
  const areas: ChangedArea[] = [];
  let offset = 0;
  while (offset < capacity) {
    const res = await session.call('QueryChangedDiskAreas', vm, { snapshot, deviceKey, startOffset: offset, changeId });
    const rv = child(res, 'returnval');
    const start = numberAt(rv, 'startOffset') ?? offset;
    const length = numberAt(rv, 'length') ?? 0;
    for (const a of children(rv, 'changedArea')) {
      const s = numberAt(a, 'start');
      const l = numberAt(a, 'length');
      if (s === undefined || l === undefined || s < 0 || l < 0 || s + l > capacity) {
        throw new VsphereFaultError(`QueryChangedDiskAreas of disk ${deviceKey} returned an area outside the disk`, 'InvalidResponse');
      }
      if (l > 0) areas.push({ start: s, length: l });
    }
    if (length <= 0 || start + length <= offset) {
      throw new VsphereFaultError(`QueryChangedDiskAreas of disk ${deviceKey} at offset ${offset} made no progress`, 'InvalidResponse');
    }
    offset = start + length;
  }
  return areas;
}

/** "vm-42" style references are taken as morefs; anything else is a name. */
export function parseVmSelector(selector: string): { moref: MoRef } | { name: string } {
  if (selector === '') throw new InputError('--vm must not be empty');
  if (/^vm-\d+$/.test(selector)) return { moref: new MoRef('VirtualMachine', selector) };
  return { name: selector };
}
