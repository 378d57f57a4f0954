/**
 * What a machine's backup would do, found by reading only: the machine's current disks
 * and change tracking from its provider, the previous generation from the repository. No
 * snapshot, no lock, no reconfiguration: `vmbkp run --dry-run` uses it.
 *
 * The prediction matches what the backup would choose, except that whether the
 * hypervisor still accepts the previous change id is known only by asking it against a
 * snapshot: a disk predicted as incr may fall back to diff. Change data the provider
 * already distrusts (a reverted or replaced machine) predicts diff.
 */
import type { BackupMode, RequestedMode } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import type { BackupProvider, MachineInventory } from '../providers/machine-provider.js';
import { periodicFullRead, previousUnusable } from './backup-set.js';
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
  /** What else the backup would do or not do (the provider's notes). */
  readonly notes?: readonly string[];
}

export async function planMachineBackup(provider: BackupProvider & Pick<MachineInventory, 'setName'>, repo: Repository, machine: { readonly name: string; readonly id: string }, opts: {
  readonly mode: RequestedMode; readonly enableCbt: boolean; readonly excludeDisks: readonly number[]; readonly diffEvery?: number | undefined;
}): Promise<VmPlan> {
  // The set is named after the machine: its newest generation is what the provider compares the machine with.
  const set = provider.setName(machine.name);
  const generations = await repo.listGenerations(set);
  const latest = generations[generations.length - 1];
  const previous = latest ? await repo.readGeneration(set, latest.generation) : undefined;
  const survey = await provider.survey(machine, {
    enableCbt: opts.enableCbt, excludeDisks: opts.excludeDisks, previous, repositoryId: repo.config.id,
  });
  const cbtOn = survey.changeTracking === 'on';

  const disks = survey.disks.map((disk): DiskPlan => {
    const base = { key: disk.key, label: disk.label, capacity: disk.capacity };
    if (disk.skipped !== undefined) return { ...base, skipped: true, why: disk.skipped };
    const prev = previous?.disks.find((d) => d.name === disk.name);
    const previousWhy = previousUnusable(set, previous, prev, disk.name, disk.capacity, repo.config.chunkSize);
    const changesWhy = !cbtOn ? 'changed-block tracking is off'
      : !prev?.changeToken ? 'the previous generation has no change id' : disk.changesVoid;
    let choice = chooseMode(`disk ${disk.key} of VM ${survey.name}`, {
      requested: opts.mode, previousUsable: previousWhy === undefined, previousWhy,
      changesKnown: changesWhy === undefined, changesWhy, lenient: true,
    });
    const periodic = choice.mode === 'incr' ? periodicFullRead(prev, opts.diffEvery) : undefined;
    if (periodic !== undefined) choice = { mode: 'diff', note: periodic };
    return { ...base, mode: choice.mode, ...(choice.note ? { why: choice.note } : {}) };
  });

  return {
    vm: survey.name, moref: survey.id, set, generation: (latest?.generation ?? 0) + 1,
    cbt: survey.changeTracking, orphanSnapshots: survey.orphans, disks, ...(survey.notes ? { notes: survey.notes } : {}),
  };
}
