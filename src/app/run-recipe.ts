/**
 * `vmbkp run RECIPE` for both kinds of recipes: the batch, the report (written to the
 * recipe's report file when it names one), and the error the run ends with. The front
 * end shows the report, then raises `failure`.
 */
import path from 'node:path';
import { PartialFailureError, errorRecord } from '../errors.js';
import { type RestoreBatchReport, runRestoreBatch } from '../jobs/restore-batch.js';
import type { RestoreOutcome, VmRestoreEvent } from '../providers/vsphere/restore-vm.js';
import type { BackupRecipe, RestoreRecipe } from '../recipe/index.js';
import type { StorageCounters } from '../storage/backend.js';
import { type BatchEvent, type BatchReport, backupVms } from './backup-vms.js';
import { type CopyEvent, type CopyReport, copyRepository } from './copy.js';
import { openRepository } from './repository.js';
import { readRepositoryPassword, recipePasswordSource } from './repository-password.js';
import { runFailure, writeReport } from './run-report.js';
import { type VmRestoreSpec, restoreProvider } from './restore-vm.js';
import type { VcenterJob } from './vcenter.js';
import { storageReport } from './repository.js';

export { loadRecipe } from '../recipe/index.js';

/** What a backup recipe's `copy` did: the copy's report, or why it failed. */
export interface CopyOutcome {
  /** The destination, as the recipe names it. */
  readonly to: string;
  /** The sets copied: the recipe's, or those of the VMs backed up (none: nothing was done). */
  readonly sets: readonly string[];
  readonly ok: boolean;
  readonly report?: CopyReport;
  readonly error?: { readonly code: string; readonly message: string };
  /** What the destination needed besides its requests (retries), when it is remote. */
  readonly storage?: StorageCounters;
}

/** A run's report as the report file and --json show it. */
/** `storage` counts what a remote repository needed besides its requests (retries), when it is one. */
type RepositoryPart = { readonly repository: string; readonly storage?: StorageCounters };
export type BackupRunReport = { readonly kind: 'backup'; readonly recipe: string } & RepositoryPart & BatchReport & { readonly copy?: CopyOutcome };
export type RestoreRunReport = { readonly kind: 'restore'; readonly recipe: string } & RepositoryPart & RestoreBatchReport<RestoreOutcome>;

export interface RecipeRun<R> {
  readonly report: R;
  /** Set when not everything succeeded: exit 1 when nothing did, 3 when some did. */
  readonly failure?: Error;
}

/** What a backup recipe run reports as it goes: the batch's events, then the copy's. */
export type BackupRecipeEvent = BatchEvent | { type: 'copy-event'; event: CopyEvent };

/**
 * The recipe's `copy`, after the backups and retention: the generations of the sets it
 * names (default: the set of every VM backed up) that `copy.to` lacks. Its password comes
 * from `copy.to` in the recipe, else `copyPassword` (the front end's sources). A failure is
 * reported, never thrown: the backups stand whatever becomes of their copy.
 */
async function copyAfterBackups(job: VcenterJob, recipePath: string, recipe: BackupRecipe, report: BatchReport,
  copyPassword: (() => Promise<string>) | undefined, onEvent: (e: BackupRecipeEvent) => void): Promise<CopyOutcome | undefined> {
  const copy = recipe.copy;
  if (!copy) return undefined;
  const sets = copy.sets ?? [...new Set(report.vms.filter((v) => v.ok).map((v) => v.set))];
  if (sets.length === 0) return { to: copy.to.path, sets, ok: true };
  const source = recipePasswordSource(recipePath, copy.to, 'copy.to');
  const password = source ? () => readRepositoryPassword(source) : copyPassword;
  try {
    const to = await openRepository(copy.to.path, password ? { password } : {});
    const r = await copyRepository({ from: job.repo, to, sets, onEvent: (event) => onEvent({ type: 'copy-event', event }) });
    return { to: copy.to.path, sets, ok: true, report: r, ...storageReport(to) };
  } catch (err) {
    const error = errorRecord(err);
    onEvent({ type: 'warning', message: `the copy to ${copy.to.path} failed: ${error.message}` });
    return { to: copy.to.path, sets, ok: false, error };
  }
}

export async function runBackupRecipe(job: VcenterJob, recipePath: string, recipe: BackupRecipe,
  onEvent?: (e: BackupRecipeEvent) => void, copyPassword?: () => Promise<string>, signal?: AbortSignal): Promise<RecipeRun<BackupRunReport>> {
  const { policy, concurrency, hooks } = recipe;
  const report = await backupVms({
    job, vms: { kind: 'recipe', targets: recipe.targets },
    policy: {
      mode: policy.mode, quiesce: policy.quiesce, memory: policy.memory, enableCbt: policy.enableCbt,
      compressionLevel: policy.compressionLevel, diffEvery: policy.diffEvery, transport: policy.transport, vddk: policy.vddk,
    },
    concurrency, hooks,
    ...(recipe.bandwidth !== undefined ? { bandwidth: recipe.bandwidth } : {}),
    secretEnv: [typeof recipe.connection === 'string' ? undefined : recipe.connection.passwordEnv, recipe.repository.passwordEnv, recipe.copy?.to.passwordEnv].filter((v) => v !== undefined),
    ...(policy.retention ? { retention: policy.retention } : {}),
    ...(onEvent ? { onEvent } : {}),
    ...(signal ? { signal } : {}),
  });
  const copy = signal?.aborted ? undefined : await copyAfterBackups(job, recipePath, recipe, report, copyPassword, onEvent ?? (() => {}));
  const full: BackupRunReport = {
    kind: 'backup', recipe: path.resolve(recipePath), repository: job.repo.location, ...storageReport(job.repo), ...report, ...(copy ? { copy } : {}),
  };
  if (recipe.report.json) await writeReport(recipe.report.json, full);
  const copyFailed = copy !== undefined && !copy.ok;
  if (report.ok && !copyFailed) return { report: full };
  const failed = report.vms.filter((v) => !v.ok);
  if (failed.length === 0) {
    const what = [!report.ok ? 'retention failed' : '', copyFailed ? `the copy to ${copy.to} failed (${copy.error?.message ?? 'failed'})` : ''].filter(Boolean).join(' and ');
    return { report: full, failure: new PartialFailureError(`recipe ${recipePath}: every VM was backed up, but ${what}`) };
  }
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
