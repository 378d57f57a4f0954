/**
 * The 'recipe' job: a backup (or restore) recipe run as `vmbkp run` runs it, for a schedule
 * or on demand. Its VMs' results go to job_vms, its warnings and steps to the log, disk
 * progress to SSE. The repository password comes from the recipe, else from the profile it
 * names in the vmbkp config, else from the server config's repository at the same place.
 */
import path from 'node:path';
import { loadConfig } from '../app/config-file.js';
import { resolveRecipeProfiles } from '../app/recipe-profiles.js';
import { readRepositoryPassword, recipePasswordSource } from '../app/repository-password.js';
import { loadRecipe, runBackupRecipe, runRestoreRecipe } from '../app/run-recipe.js';
import type { VmResult } from '../app/backup-vms.js';
import { openVcenterJob } from '../app/vcenter.js';
import { UsageError, errorRecord } from '../errors.js';
import type { ServerConfig } from './config.js';
import { badRequest } from './http-error.js';
import type { JobHandle, JobKind, JobOutcome } from './jobs.js';
import type { RepositoryRegistry } from './repositories.js';

/** Which recipe: a schedule's, or one the config allows on demand (never any file an operator names). */
function recipeOf(config: ServerConfig, params: Record<string, unknown>): { recipe: string; schedule?: string } {
  if (typeof params['schedule'] === 'string') {
    const s = config.schedules.find((x) => x.name === params['schedule']);
    if (!s) throw badRequest(`schedule ${JSON.stringify(params['schedule'])} is not in the server config (it has ${config.schedules.map((x) => x.name).join(', ') || 'none'})`);
    return { recipe: s.recipe, schedule: s.name };
  }
  if (typeof params['recipe'] === 'string') {
    const want = path.resolve(params['recipe']);
    const allowed = new Set([...config.recipes, ...config.schedules.map((s) => s.recipe)]);
    if (!allowed.has(want)) throw badRequest(`recipe ${params['recipe']} is not one the server config names (recipes, or a schedule's recipe)`);
    return { recipe: want };
  }
  throw badRequest('a recipe job needs "schedule" (a schedule\'s name) or "recipe" (a recipe file the server config names)');
}

/** Disk progress summed over the VMs running at once. */
class ProgressTotals {
  private readonly disks = new Map<string, { done: number; total: number }>();
  update(key: string, done: number, total: number): { done: number; total: number } {
    this.disks.set(key, { done, total });
    let d = 0;
    let t = 0;
    for (const v of this.disks.values()) { d += v.done; t += v.total; }
    return { done: d, total: t };
  }
}

async function run(job: JobHandle, config: ServerConfig, configFile: string, repos: RepositoryRegistry): Promise<JobOutcome> {
  const { recipe: recipePath } = recipeOf(config, job.params);
  const vmbkpConfig = await loadConfig(config.config, {});
  const { recipe, login, repositoryPassword } = resolveRecipeProfiles(await loadRecipe(recipePath), recipePath, vmbkpConfig);
  const configured = repos.byLocation(recipe.repository.path);
  if (configured) job.setRepository(configured.name);
  else job.setRepository(recipe.repository.path);
  const source = recipePasswordSource(recipePath, recipe.repository) ?? repositoryPassword;
  const password = source ? () => readRepositoryPassword(source)
    : configured ? repos.password(configured) : undefined;
  const noPassword = () => Promise.reject(new UsageError(`repository ${recipe.repository.path} is encrypted: give its password in recipe ${recipePath} `
    + `(repository.passwordFile, passwordEnv or passwordCommand), or as passwordFile of a repository at that place in the server config ${configFile}`));
  job.log('info', `recipe ${recipePath}: opening repository ${recipe.repository.path} and logging in to ${login.vcenter}`);
  const vc = await openVcenterJob(login, recipe.repository.path, password ?? noPassword);
  try {
    if (recipe.kind === 'backup') {
      const totals = new ProgressTotals();
      const recorded = new Set<string>();
      const record = (v: VmResult) => {
        recorded.add(v.vm);
        const disks = v.disks ?? [];
        job.vm({
          name: v.vm, set: v.set, ok: v.ok, error: v.error, generation: v.generation,
          mode: disks.length > 0 ? [...new Set(disks.map((d) => d.mode))].join('+') : undefined,
          bytesRead: disks.reduce((n, d) => n + d.bytesRead, 0), bytesStored: disks.reduce((n, d) => n + d.bytesStored, 0),
          durationMs: v.durationMs, warnings: v.warnings,
        });
        job.log(v.ok ? 'info' : 'error', v.ok ? `VM ${v.vm}: generation ${v.generation} of set ${v.set} stored` : `VM ${v.vm}: backup failed: ${v.error?.message ?? 'failed'}`);
      };
      const r = await runBackupRecipe(vc, recipePath, recipe, (e) => {
        if (e.type === 'warning') job.log('warning', e.message);
        else if (e.type === 'vm-start') job.log('info', `VM ${e.vm}: backup started`);
        else if (e.type === 'vm-event') {
          const ev = e.event;
          if (ev.type === 'warning') job.log('warning', `VM ${e.vm}: ${ev.message}`);
          else if (ev.type === 'step') job.log('info', `VM ${e.vm}: ${ev.message}`);
          else if (ev.type === 'disk-start') job.log('info', `VM ${e.vm}: disk ${ev.disk}: ${ev.mode}${ev.note ? ` (${ev.note})` : ''}`);
          else if (ev.type === 'progress') {
            const t = totals.update(`${e.vm}\0${ev.disk}`, ev.progress.bytesDone, ev.progress.bytesTotal);
            job.progress({ ...t, vm: e.vm, disk: ev.disk });
          }
        } else if (e.type === 'vm-done') {
          record(e.result);
        } else if (e.type === 'copy-event' && e.event.type === 'warning') job.log('warning', `copy: ${e.event.message}`);
      }, undefined, job.signal);
      // VMs that never started (not found, or the run cancelled first) are in the report only.
      for (const v of r.report.vms) if (!recorded.has(v.vm)) record(v);
      return outcome(r.report, r.failure, job.signal, r.report.vms.length, r.report.succeeded);
    }
    const r = await runRestoreRecipe(vc, recipePath, recipe, job.signal, (e) => {
      if (e.event.type === 'warning') job.log('warning', `${e.name}: ${e.event.message}`);
    });
    for (const x of r.report.restores) {
      job.vm({ name: x.name, set: x.set, ok: x.ok, error: x.error, generation: undefined });
    }
    return outcome(r.report, r.failure, job.signal, r.report.restores.length, r.report.restores.filter((x) => x.ok).length);
  } finally {
    await vc.close().catch(() => {});
  }
}

function outcome(report: unknown, failure: Error | undefined, signal: AbortSignal, items: number, succeeded: number): JobOutcome {
  if (!failure) return { status: 'succeeded', result: report };
  const error = errorRecord(failure);
  if (signal.aborted) return { status: 'cancelled', error, result: report };
  return { status: succeeded > 0 && succeeded < items ? 'partial' : 'failed', error, result: report };
}

export function recipeJobKind(config: ServerConfig, configFile: string, repos: RepositoryRegistry): JobKind {
  return {
    kind: 'recipe',
    parse: (body) => {
      const r = recipeOf(config, body);
      return r.schedule !== undefined ? { schedule: r.schedule } : { recipe: r.recipe };
    },
    describe: (params) => {
      const schedule = typeof params['schedule'] === 'string' ? params['schedule'] : undefined;
      return { name: schedule ?? path.basename(String(params['recipe']), path.extname(String(params['recipe']))), schedule };
    },
    run: (job) => run(job, config, configFile, repos),
  };
}
