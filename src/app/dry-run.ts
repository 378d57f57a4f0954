/**
 * `vmbkp run --dry-run` for both kinds of recipes: what a run would do, found by reading
 * only (the inventory, the VMs' configuration, the repository's generations). No lock, no
 * snapshot, no change to any VM.
 */
import { PartialFailureError, describeCause } from '../errors.js';
import type { RequestedMode } from '../repository/generation.js';
import { type VmPlan, planMachineBackup } from '../jobs/plan-machine.js';
import { VsphereProvider } from '../providers/vsphere/provider.js';
import { resolveGeneration } from '../jobs/resolve.js';
import type { BackupRecipe, RestoreRecipe } from '../recipe/index.js';
import { findVm } from '../vsphere/inventory.js';
import { selectTargets } from './backup-vms.js';
import { runFailure } from './run-report.js';
import type { VcenterJob } from './vcenter.js';

export type { VmPlan } from '../jobs/plan-machine.js';

/** A target the backup could not do, with why. */
export interface UnplannedVm { readonly vm: string; readonly error: string }

export interface BackupDryRun {
  readonly vms: readonly (VmPlan | UnplannedVm)[];
  /** Set when some target cannot be backed up: the run would fail for it. */
  readonly failure?: Error;
}

/** Each target's disks and the mode each would get; targets that cannot be backed up say why. */
export async function planBackupRecipe(job: VcenterJob, recipePath: string, recipe: BackupRecipe): Promise<BackupDryRun> {
  const vms: (VmPlan | UnplannedVm)[] = [];
  const provider = new VsphereProvider(job.session);
  for (const t of await selectTargets(provider, { kind: 'recipe', targets: recipe.targets })) {
    if ('unresolved' in t) {
      vms.push({ vm: t.name, error: t.unresolved });
      continue;
    }
    try {
      const id = t.id ?? (await findVm(job.session, t.name)).ref.value;
      vms.push(await planMachineBackup(provider, job.repo, { name: t.name, id }, {
        mode: recipe.policy.mode, enableCbt: recipe.policy.enableCbt, excludeDisks: t.excludeDisks, diffEvery: recipe.policy.diffEvery,
      }));
    } catch (err) {
      vms.push({ vm: t.name, error: describeCause(err) });
    }
  }
  const bad = vms.filter((p): p is UnplannedVm => 'error' in p);
  return {
    vms,
    ...(bad.length > 0 ? { failure: runFailure(recipePath, vms.length, bad.map((p) => ({ name: p.vm, cause: p.error })), 'targets', 'cannot be backed up') } : {}),
  };
}

/** `backup --vcenter … --vm NAME --dry-run`: each VM as named, planned like a recipe's targets. */
export async function planVmBackups(job: VcenterJob, names: readonly string[], opts: {
  readonly mode: RequestedMode; readonly enableCbt: boolean; readonly diffEvery?: number | undefined;
}): Promise<BackupDryRun> {
  const provider = new VsphereProvider(job.session);
  const vms: (VmPlan | UnplannedVm)[] = [];
  const errors: unknown[] = [];
  for (const name of names) {
    try {
      const vm = await findVm(job.session, name);
      vms.push(await planMachineBackup(provider, job.repo, { name: vm.name, id: vm.ref.value }, { ...opts, excludeDisks: [] }));
    } catch (err) {
      vms.push({ vm: name, error: describeCause(err) });
      errors.push(err);
    }
  }
  const bad = vms.filter((p): p is UnplannedVm => 'error' in p);
  if (bad.length === 0) return { vms };
  // The error the backup itself would end with: the one VM's (all failed), or a partial failure.
  const failure = bad.length === names.length ? (errors[0] instanceof Error ? errors[0] : new Error(bad[0]!.error))
    : new PartialFailureError(`${bad.length} of ${names.length} VMs cannot be backed up: ${bad.map((b) => b.vm).join(', ')}`);
  return { vms, failure };
}

/** What --dry-run says of each restore: the generation it would use, and whether the name is free. */
export interface RestorePlan {
  readonly name: string;
  readonly set: string;
  readonly generation?: number;
  readonly overwrite?: boolean;
  readonly error?: string;
}

export interface RestoreDryRun {
  readonly restores: readonly RestorePlan[];
  readonly failure?: Error;
}

export async function planRestoreRecipe(job: VcenterJob, recipePath: string, recipe: RestoreRecipe): Promise<RestoreDryRun> {
  const restores: RestorePlan[] = [];
  for (const r of recipe.restores) {
    try {
      const m = await resolveGeneration(job.repo, r.set, String(r.generation));
      const existing = await findVm(job.session, r.name).then(() => true, () => false);
      const problem = existing && !r.overwrite ? `a VM named ${r.name} exists (set overwrite: true to write its disks)` : undefined;
      restores.push({ name: r.name, set: r.set, generation: m.generation, overwrite: existing, ...(problem ? { error: problem } : {}) });
    } catch (err) {
      restores.push({ name: r.name, set: r.set, error: describeCause(err) });
    }
  }
  const bad = restores.filter((p) => p.error !== undefined);
  return {
    restores,
    ...(bad.length > 0 ? { failure: runFailure(recipePath, restores.length, bad.map((p) => ({ name: p.name, cause: p.error! })), 'restores', 'cannot be done') } : {}),
  };
}
