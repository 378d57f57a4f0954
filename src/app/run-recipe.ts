/**
 * `vmbkp run RECIPE` for both kinds of recipes: the batch, the report (written to the
 * recipe's report file when it names one), and the error the run ends with. The front
 * end shows the report, then raises `failure`.
 */
import path from 'node:path';
import { PartialFailureError } from '../errors.js';
import { type RestoreBatchReport, runRestoreBatch } from '../jobs/restore-batch.js';
import type { RestoreOutcome, VmRestoreEvent } from '../providers/vsphere/restore-vm.js';
import type { BackupRecipe, RestoreRecipe } from '../recipe/index.js';
import type { StorageCounters } from '../storage/backend.js';
import { type BatchEvent, type BatchReport, backupVms } from './backup-vms.js';
import { runFailure, writeReport } from './run-report.js';
import { type VmRestoreSpec, restoreProvider } from './restore-vm.js';
import type { VcenterJob } from './vcenter.js';
import { storageReport } from './repository.js';

export { loadRecipe } from '../recipe/index.js';

/** A run's report as the report file and --json show it. */
/** `storage` counts what a remote repository needed besides its requests (retries), when it is one. */
type RepositoryPart = { readonly repository: string; readonly storage?: StorageCounters };
export type BackupRunReport = { readonly kind: 'backup'; readonly recipe: string } & RepositoryPart & BatchReport;
export type RestoreRunReport = { readonly kind: 'restore'; readonly recipe: string } & RepositoryPart & RestoreBatchReport<RestoreOutcome>;

export interface RecipeRun<R> {
  readonly report: R;
  /** Set when not everything succeeded: exit 1 when nothing did, 3 when some did. */
  readonly failure?: Error;
}

export async function runBackupRecipe(job: VcenterJob, recipePath: string, recipe: BackupRecipe,
  onEvent?: (e: BatchEvent) => void): Promise<RecipeRun<BackupRunReport>> {
  const { policy, concurrency, hooks } = recipe;
  const report = await backupVms({
    job, vms: { kind: 'recipe', targets: recipe.targets },
    policy: {
      mode: policy.mode, quiesce: policy.quiesce, memory: policy.memory, enableCbt: policy.enableCbt,
      compressionLevel: policy.compressionLevel, transport: policy.transport, vddk: policy.vddk,
    },
    concurrency, hooks,
    ...(recipe.bandwidth !== undefined ? { bandwidth: recipe.bandwidth } : {}),
    secretEnv: [recipe.connection.passwordEnv, recipe.repository.passwordEnv].filter((v) => v !== undefined),
    ...(policy.retention ? { retention: policy.retention } : {}),
    ...(onEvent ? { onEvent } : {}),
  });
  const full: BackupRunReport = { kind: 'backup', recipe: path.resolve(recipePath), repository: job.repo.location, ...storageReport(job.repo), ...report };
  if (recipe.report.json) await writeReport(recipe.report.json, full);
  if (report.ok) return { report: full };
  const failed = report.vms.filter((v) => !v.ok);
  if (failed.length === 0) return { report: full, failure: new PartialFailureError(`recipe ${recipePath}: every VM was backed up, but retention failed`) };
  return { report: full, failure: runFailure(recipePath, report.vms.length, failed.map((v) => ({ name: v.vm, cause: v.error?.message ?? 'failed' })), 'VMs') };
}

function specOf(r: RestoreRecipe['restores'][number]): VmRestoreSpec {
  return {
    set: r.set, generation: String(r.generation), name: r.name, datastore: r.datastore, host: r.host, folder: r.folder,
    resourcePool: r.resourcePool, network: r.network, powerOn: r.powerOn, keepIdentity: r.keepIdentity, overwrite: r.overwrite,
  };
}

/** The restores one after the other; `signal` stops the current one cleanly and skips the rest. */
export async function runRestoreRecipe(job: VcenterJob, recipePath: string, recipe: RestoreRecipe, signal: AbortSignal | undefined,
  onEvent?: (e: { name: string; event: VmRestoreEvent }) => void): Promise<RecipeRun<RestoreRunReport>> {
  const report = await runRestoreBatch({
    repo: job.repo, provider: await restoreProvider(job, recipe.transport, recipe.vddk), restores: recipe.restores.map(specOf),
    ...(signal ? { signal } : {}),
    ...(onEvent ? { onEvent } : {}),
  });
  const full: RestoreRunReport = { kind: 'restore', recipe: path.resolve(recipePath), repository: job.repo.location, ...storageReport(job.repo), ...report };
  if (recipe.report.json) await writeReport(recipe.report.json, full);
  const failed = report.restores.filter((x) => !x.ok);
  if (failed.length === 0) return { report: full };
  return { report: full, failure: runFailure(recipePath, report.restores.length, failed.map((x) => ({ name: x.name, cause: x.error?.message ?? 'failed' })), 'restores') };
}
