/**
 * The job kinds of the resource endpoints: verify, prune (or its dry run), restore-disk and
 * restore-vm. Each runs the application function the CLI command runs, and keeps what the
 * CLI prints under --json as the job's result.
 */
import { loadConfig } from '../app/config-file.js';
import { runPrune, type PruneTarget } from '../app/prune-run.js';
import { profilePolicies } from '../app/prune-policies.js';
import { restoreDiskTo } from '../app/restore-disk.js';
import { type VmRestoreSpec, restoreVmRun } from '../app/restore-vm.js';
import { vcenterLoginOf, vcenterSettings } from '../app/settings.js';
import { type VcenterJob, startVcenterJob, vcenterConnection } from '../app/vcenter.js';
import { verifyFailure, verifyRepository } from '../app/verify-run.js';
import { UsageError, checkInterrupted, errorRecord } from '../errors.js';
import type { CountProgress } from '../repository/count-progress.js';
import type { Repository } from '../repository/repository.js';
import type { ServerContext } from './context.js';
import type { JobHandle, JobKind } from './jobs.js';
import {
  type PruneParams, type RestoreVmParams, diskTargetUri, keepPolicy, parsePrune, parseRestoreDisk, parseRestoreVm, parseVerify,
} from './resource-params.js';

/** Count progress as job progress, and each new step once in the log. */
function countProgress(job: JobHandle, what: string): (p: CountProgress) => void {
  let step: string | undefined;
  return (p) => {
    // verify and a dry run change nothing: stopping between steps is always clean.
    checkInterrupted(job.signal, what);
    if (p.step !== step) { step = p.step; job.log('info', `${what}: ${p.step} (${p.total} ${p.unit})`); }
    job.progress({ done: p.done, total: p.total });
  };
}

/** The prune target a request names: one set by keep, or every set by keep, a recipe or the repository profile's retention. */
export async function pruneTarget(ctx: ServerContext, p: PruneParams): Promise<PruneTarget> {
  if (p.set !== undefined) return { set: p.set, policy: keepPolicy(p.keep!) };
  const retention = ctx.config.config !== undefined && !p.keep && p.recipe === undefined
    ? (await loadConfig(ctx.config.config)).data.repositories[p.repository]?.retention : undefined;
  return {
    all: true, options: p.keep ? keepPolicy(p.keep) : undefined, recipe: p.recipe,
    policyFor: retention ? profilePolicies(p.repository, retention) : undefined,
  };
}

/** The vCenter a restore names, logged into: a profile of the vmbkp config file of the server config (the environment changes nothing). */
export async function vcenterJobFor(ctx: ServerContext, vcenter: string, repo: Repository): Promise<VcenterJob> {
  if (ctx.config.config === undefined) {
    throw new UsageError(`restore-vm: vcenter ${JSON.stringify(vcenter)} cannot be looked up: the server config ${ctx.configFile} names no vmbkp config file (config:) with vcenters`);
  }
  const config = await loadConfig(ctx.config.config);
  const settings = vcenterSettings(config, { vcenter, given: 'vcenter of the request' }, undefined);
  if (!settings) throw new UsageError('restore-vm needs a vcenter');
  return startVcenterJob(await vcenterConnection(vcenterLoginOf(settings)), repo);
}

export function vmRestoreSpec(p: RestoreVmParams): VmRestoreSpec {
  return {
    set: p.set, generation: p.generation, name: p.name,
    datastore: p.datastore, host: p.host, folder: p.folder, resourcePool: p.resourcePool, network: p.network,
    powerOn: p.powerOn, keepIdentity: p.keepIdentity, overwrite: p.overwrite,
  };
}

export function resourceJobKinds(ctx: ServerContext): JobKind[] {
  const verify: JobKind = {
    kind: 'verify',
    parse: (body) => parseVerify(body),
    describe: (params) => ({ name: `verify ${String(params['repository'])}${params['readData'] ? ' --read-data' : ''}`, repository: String(params['repository']) }),
    async run(job) {
      const p = parseVerify(job.params);
      const repo = await ctx.repositories.open(p.repository);
      const result = await verifyRepository({
        repo, readData: p.readData, onWarning: (m) => job.log('warning', m), onProgress: countProgress(job, `verify of ${p.repository}`),
      });
      for (const problem of result.problems) job.log('error', `problem: ${problem.message}`);
      job.log('info', result.ok ? 'no problems found' : `${result.problems.length} problems found`);
      const failure = verifyFailure(repo, result);
      return { result, bytesRead: result.bytesRead, ...(failure ? { status: 'failed' as const, error: errorRecord(failure) } : {}) };
    },
  };

  const prune: JobKind = {
    kind: 'prune',
    parse: (body) => parsePrune(body),
    describe: (params) => ({
      name: `prune ${String(params['repository'])}${params['set'] !== undefined ? ` set ${String(params['set'])}` : ''}${params['dryRun'] ? ' (dry run)' : ''}`,
      repository: String(params['repository']),
    }),
    async run(job) {
      const p = parsePrune(job.params);
      const repo = await ctx.repositories.open(p.repository);
      const run = await runPrune({
        repo, target: await pruneTarget(ctx, p), dryRun: p.dryRun, gc: p.gc, onWarning: (m) => job.log('warning', m),
        // A real prune is not stopped half-way: its lock covers the removal and the gc after.
        ...(p.dryRun ? { onProgress: countProgress(job, `prune of ${p.repository}`) } : {}),
      });
      const verb = p.dryRun ? 'would remove' : 'removed';
      for (const s of run.result.sets) for (const g of s.remove) job.log('info', `${verb} ${s.set} generation ${g}`);
      for (const s of run.policies.unmanaged) job.log('info', `left alone ${s}: no retention policy for it`);
      const removed = run.result.sets.reduce((n, s) => n + s.remove.length, 0);
      job.log('info', p.dryRun ? `dry run: would remove ${removed} generations; nothing was changed` : `${removed} generations removed`);
      return { result: run.json };
    },
  };

  const restoreDisk: JobKind = {
    kind: 'restore-disk',
    parse: (body) => parseRestoreDisk(body),
    describe: (params) => ({
      name: `restore ${String(params['set'])} generation ${String(params['generation'])} disk ${String(params['disk'])} to ${String(params['to'])}`,
      repository: String(params['repository']),
    }),
    async run(job) {
      // Checked again: the file may have appeared since the request.
      const p = parseRestoreDisk(job.params);
      const repo = await ctx.repositories.open(p.repository);
      const result = await restoreDiskTo({
        repo, set: p.set, generation: p.generation, disk: p.disk, to: diskTargetUri(p), overwrite: p.overwrite, signal: job.signal,
        onStart: (size) => job.log('info', `restoring set ${p.set} generation ${p.generation} disk ${p.disk} (${size} bytes) to ${p.to}`),
        onProgress: (pr) => job.progress({ done: pr.bytesDone, total: pr.bytesTotal, disk: p.disk }),
        onWarning: (m) => job.log('warning', m),
      });
      job.log('info', `restored set ${result.set} generation ${result.generation} disk ${result.disk} to ${result.target}: ${result.bytesWritten} bytes written, every chunk verified`);
      return { result };
    },
  };

  const restoreVm: JobKind = {
    kind: 'restore-vm',
    parse: (body) => parseRestoreVm(body),
    describe: (params) => ({
      name: `restore ${String(params['set'])} generation ${String(params['generation'])} as VM ${String(params['name'])}`,
      repository: String(params['repository']),
    }),
    async run(job) {
      const p = parseRestoreVm(job.params);
      const repo = await ctx.repositories.open(p.repository);
      const vc = await vcenterJobFor(ctx, p.vcenter, repo);
      try {
        const result = await restoreVmRun({
          job: vc, spec: vmRestoreSpec(p), transport: p.transport, vddk: { libdir: p.vddkLibdir, transports: p.vddkTransports },
          disksAtOnce: p.disksAtOnce, signal: job.signal,
          onEvent: (e) => {
            if (e.type === 'warning') job.log('warning', e.message);
            else if (e.type === 'disk-start') job.log('info', `disk ${e.disk}: ${e.phase}`);
            else if (e.type === 'progress') job.progress({ done: e.progress.bytesDone, total: e.progress.bytesTotal, vm: p.name, disk: e.disk });
          },
        });
        job.vm({ name: p.name, set: result.set, ok: true, generation: result.generation, durationMs: result.durationMs });
        job.log('info', `restored set ${result.set} generation ${result.generation} as VM ${result.vm} (${result.moref})`);
        return { result };
      } finally {
        await vc.close();
      }
    },
  };

  return [verify, prune, restoreDisk, restoreVm];
}
