/**
 * What a VM backup would do, found by reading only: the VM's current disks and CBT state
 * from vCenter, the previous generation from the repository. No snapshot, no lock, no
 * reconfiguration: `vmbkp run --dry-run` uses it.
 *
 * The prediction matches what backupVm would choose, except that whether vCenter still
 * accepts the previous change id is known only by asking it against a snapshot: a disk
 * predicted as incr may fall back to diff.
 */
import type { BackupMode, RequestedMode } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import type { VmRef } from '../vsphere/inventory.js';
import { retrieveOne } from '../vsphere/property-collector.js';
import type { VsphereSession } from '../vsphere/session.js';
import { disksOf, snapshotsOf, unsnapshottable } from '../vsphere/vm.js';
import { boolAt } from '../vsphere/xml.js';
import { SNAPSHOT_PREFIX, setNameForVm } from './backup-vm.js';
import { previousUnusable } from './backup-set.js';
import { chooseMode } from './choose-mode.js';

export interface DiskPlan {
  readonly key: number;
  readonly label: string;
  readonly capacity: number;
  /** Absent when the disk is skipped. */
  readonly mode?: BackupMode;
  /** Why not a better mode, or why skipped. */
  readonly why?: string;
  readonly skipped?: boolean;
}

export interface VmPlan {
  readonly vm: string;
  readonly moref: string;
  readonly set: string;
  /** The generation the backup would create. */
  readonly generation: number;
  readonly cbt: 'on' | 'off' | 'would be enabled';
  /** vmbkp snapshots left by a killed run, which the backup would remove first. */
  readonly orphanSnapshots: readonly string[];
  readonly disks: readonly DiskPlan[];
}

export async function planVmBackup(session: VsphereSession, repo: Repository, vm: VmRef, opts: {
  readonly mode: RequestedMode; readonly enableCbt: boolean; readonly excludeDisks: readonly number[];
}): Promise<VmPlan> {
  const props = await retrieveOne(session, vm.ref, ['config', 'snapshot']);
  const config = props.get('config');
  const cbtOn = boolAt(config, 'changeTrackingEnabled') === true;
  const set = setNameForVm(vm.name);
  const generations = await repo.listGenerations(set);
  const latest = generations[generations.length - 1];
  const previous = latest ? await repo.readGeneration(set, latest.generation) : undefined;

  const disks = disksOf(config).map((disk): DiskPlan => {
    const base = { key: disk.key, label: disk.label, capacity: disk.capacity };
    if (opts.excludeDisks.includes(disk.key)) return { ...base, skipped: true, why: 'excluded by the recipe' };
    const skip = unsnapshottable(disk);
    if (skip) return { ...base, skipped: true, why: skip };
    const prev = previous?.disks.find((d) => d.name === String(disk.key));
    const previousWhy = previousUnusable(set, previous, prev, String(disk.key), disk.capacity, repo.config.chunkSize);
    const changesWhy = !cbtOn ? 'changed-block tracking is off'
      : !prev?.changeToken ? 'the previous generation has no change id' : undefined;
    const choice = chooseMode(`disk ${disk.key} of VM ${vm.name}`, {
      requested: opts.mode, previousUsable: previousWhy === undefined, previousWhy,
      changesKnown: changesWhy === undefined, changesWhy, lenient: true,
    });
    return { ...base, mode: choice.mode, ...(choice.note ? { why: choice.note } : {}) };
  });

  return {
    vm: vm.name, moref: vm.ref.value, set, generation: (latest?.generation ?? 0) + 1,
    cbt: cbtOn ? 'on' : opts.enableCbt ? 'would be enabled' : 'off',
    orphanSnapshots: snapshotsOf(props.get('snapshot')).filter((s) => s.name.startsWith(SNAPSHOT_PREFIX)).map((s) => s.name),
    disks,
  };
}
