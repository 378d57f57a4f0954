/**
 * One VM, online: remove vmbkp snapshots a killed run left behind, take a snapshot named
 * after the new generation, back up every disk as the snapshot froze it, commit the
 * generation, and remove the snapshot — in every outcome.
 */
import { randomUUID } from 'node:crypto';
import { InputError, IoError, describeCause } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { isThisProcess, ownerState } from '../process-identity.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import type { DiskSource } from '../sources/types.js';
import type { SnapshotDisk } from '../sources/vsphere.js';
import { type VmRef, findVm } from '../vsphere/inventory.js';
import { ovfDescriptor } from '../vsphere/ovf.js';
import { retrieveOne } from '../vsphere/property-collector.js';
import type { VsphereSession } from '../vsphere/session.js';
import { backupSnapshotDescription, snapshotOwner } from '../vsphere/snapshot-owner.js';
import {
  type VirtualDiskInfo, createSnapshot, disksOf, enableChangeTracking, removeSnapshot, snapshotsOf, unsnapshottable,
} from '../vsphere/vm.js';
import type { MoRef, XmlNode } from '../vsphere/xml.js';
import { boolAt } from '../vsphere/xml.js';
import { type BackupEvent, backupSet } from './backup-set.js';
import type { Semaphore } from './concurrency.js';

export const SNAPSHOT_PREFIX = 'vmbkp-';

export type OpenDisk = (d: SnapshotDisk) => Promise<DiskSource>;

export type VmBackupEvent = BackupEvent | { type: 'step'; message: string };

export interface VmBackupRequest {
  readonly repo: Repository;
  readonly session: VsphereSession;
  /** A VM name or moref. */
  readonly vm: string;
  readonly mode: RequestedMode;
  /** The transport: how a snapshot disk becomes a DiskSource. */
  readonly openDisk: OpenDisk;
  readonly quiesce?: boolean;
  readonly memory?: boolean;
  readonly enableCbt?: boolean;
  readonly compressionLevel?: number;
  readonly workers?: number;
  /** Disks read at once (default 1). */
  readonly diskConcurrency?: number;
  /** Device keys of disks not to back up (a recipe's excludeDisks). */
  readonly excludeDisks?: readonly number[];
  /** Bounds vmbkp snapshots open at once across a batch: held from creation to removal. */
  readonly snapshotSlots?: Semaphore;
  readonly onEvent?: (e: VmBackupEvent) => void;
}

/** What a generation of a VM records about the machine (the manifest's `machine`). */
export interface VsphereMachine {
  readonly kind: 'vsphere-vm';
  readonly vcenter: string;
  readonly moref: string;
  readonly name: string;
  readonly snapshot: string;
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
}

/** A backup set's name from a VM name: characters sets cannot hold become "_". */
export function setNameForVm(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]/, '_').slice(0, 128);
  return s === '' ? '_' : s;
}

/**
 * Removes vmbkp snapshots left by killed runs; refuses when a live run on this host owns
 * one (its pid runs with the recorded start time). Another host's snapshots are removed.
 */
async function removeOrphans(session: VsphereSession, vm: VmRef, snapshotProp: XmlNode | undefined, warn: (m: string) => void): Promise<void> {
  for (const s of snapshotsOf(snapshotProp).filter((x) => x.name.startsWith(SNAPSHOT_PREFIX)).reverse()) {
    const owner = snapshotOwner(s.description);
    if (owner && !isThisProcess(owner) && ownerState(owner) === 'alive') {
      throw new InputError(`VM ${vm.name} is being backed up by vmbkp process ${owner.pid} on this host (snapshot ${s.name})`);
    }
    warn(`removing snapshot ${s.name} of VM ${vm.name}, left by an earlier run`);
    await removeSnapshot(session, s.ref, `removing snapshot ${s.name} of VM ${vm.name}`);
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
      await new Promise((r) => setTimeout(r, SNAPSHOT_REMOVAL_BACKOFF_MS * attempt));
    }
  }
  throw new IoError(`removing snapshot ${name} of VM ${vm.name} failed: ${describeCause(last)}; the next vmbkp run on this VM removes it`, { cause: last });
}

export async function backupVm(req: VmBackupRequest): Promise<GenerationManifest> {
  const { session } = req;
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  const vm = await findVm(session, req.vm);
  const set = setNameForVm(vm.name);
  const props = await retrieveOne(session, vm.ref, ['config', 'snapshot']);
  await removeOrphans(session, vm, props.get('snapshot'), warn);

  if (boolAt(props.get('config'), 'changeTrackingEnabled') !== true) {
    if (req.enableCbt) {
      emit({ type: 'step', message: `enabling changed-block tracking on VM ${vm.name}` });
      await enableChangeTracking(session, vm.ref, vm.name);
    } else {
      warn(`changed-block tracking is off on VM ${vm.name}: every backup reads whole disks (turn it on with --enable-cbt)`);
    }
  }

  const release = req.snapshotSlots ? await req.snapshotSlots.acquire() : () => {};
  try {
    return await backupFromSnapshot(req, vm, set, emit);
  } finally {
    release();
  }
}

async function backupFromSnapshot(req: VmBackupRequest, vm: VmRef, set: string, emit: (e: VmBackupEvent) => void): Promise<GenerationManifest> {
  const { session } = req;
  const warn = (message: string) => emit({ type: 'warning', message });
  const id = randomUUID();
  const snapName = `${SNAPSHOT_PREFIX}${id}`;
  emit({ type: 'step', message: `creating snapshot ${snapName} of VM ${vm.name}` });
  let snapshot: MoRef;
  try {
    snapshot = await createSnapshot(session, vm.ref, vm.name, snapName, {
      description: backupSnapshotDescription(), memory: req.memory ?? false, quiesce: req.quiesce ?? false,
    });
  } catch (err) {
    // A failed task may still have left the snapshot: look for it by name.
    const after = await retrieveOne(session, vm.ref, ['snapshot']).catch(() => undefined);
    for (const s of snapshotsOf(after?.get('snapshot')).filter((x) => x.name === snapName)) {
      await removeSnapshot(session, s.ref, `removing snapshot ${snapName} of VM ${vm.name}`).catch(() => {});
    }
    throw err;
  }

  const sources: DiskSource[] = [];
  await failpoint('vm:snapshot-taken');
  let manifest: GenerationManifest | undefined;
  let failure: unknown;
  try {
    const config = (await retrieveOne(session, snapshot, ['config'])).get('config');
    const disks = disksOf(config);
    const machineDisks: VsphereMachine['disks'][number][] = [];
    const inputs = [];
    for (const disk of disks) {
      if (req.excludeDisks?.includes(disk.key)) {
        machineDisks.push(machineDisk(disk, 'excluded by the recipe'));
        continue;
      }
      const skip = unsnapshottable(disk);
      if (skip) {
        warn(`skipping disk ${disk.key} (${disk.label}) of VM ${vm.name}: ${skip}`);
        machineDisks.push(machineDisk(disk, skip));
        continue;
      }
      const source = await req.openDisk({ session, vm, snapshot, disk });
      sources.push(source);
      inputs.push({ name: String(disk.key), source });
      machineDisks.push(machineDisk(disk));
    }
    const machine: VsphereMachine = {
      kind: 'vsphere-vm', vcenter: session.host, moref: vm.ref.value, name: vm.name, snapshot: snapName,
      changeTracking: boolAt(config, 'changeTrackingEnabled') === true,
      disks: machineDisks, config: config ?? '', ovf: ovfDescriptor(config),
    };
    const hadGenerations = (await req.repo.listGenerations(set)).length > 0;
    manifest = await backupSet({
      repo: req.repo, set, mode: req.mode, disks: inputs, machine, id, lenient: true,
      ...(req.compressionLevel !== undefined ? { compressionLevel: req.compressionLevel } : {}),
      ...(req.workers !== undefined ? { workers: req.workers } : {}),
      ...(req.diskConcurrency !== undefined ? { diskConcurrency: req.diskConcurrency } : {}),
      onEvent: (e) => {
        if (e.type === 'disk-start' && e.note && hadGenerations) warn(`VM ${vm.name} disk ${e.disk}: ${e.mode} backup, ${e.note}`);
        emit(e);
      },
    });
  } catch (err) {
    failure = err;
  } finally {
    for (const s of sources) await s.close().catch(() => {});
  }
  try {
    emit({ type: 'step', message: `removing snapshot ${snapName} of VM ${vm.name}` });
    await removeOurSnapshot(session, vm, snapshot, snapName);
  } catch (err) {
    if (failure === undefined) {
      throw new IoError(`${describeCause(err)} (generation ${manifest?.generation} of set ${set} was committed and is complete)`, { cause: err });
    }
    warn(describeCause(err));
  }
  if (failure !== undefined) throw failure;
  return manifest!;
}
