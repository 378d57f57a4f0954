/** `vmbkp run RECIPE.yaml [--dry-run]`: a whole batch of VM backups from one recipe file. */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { IoError, PartialFailureError, UsageError, describeCause } from '../../errors.js';
import { type BatchReport, type BatchTarget, type VmResult, runBackupBatch } from '../../jobs/backup-batch.js';
import { type VmPlan, planVmBackup } from '../../jobs/plan-vm.js';
import { type BackupRecipe, loadRecipe, resolvePassword } from '../../recipe/index.js';
import { resolveTargets } from '../../recipe/resolve-targets.js';
import { Repository } from '../../repository/repository.js';
import { LocalBackend } from '../../storage/local.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { MoRef } from '../../vsphere/xml.js';
import { type TlsPolicy, normalizeThumbprint } from '../../vsphere/tls.js';
import { diskOpener } from '../backup-vm.js';
import { Output } from '../context.js';
import { bytes, duration, table } from '../format.js';
import { type VcenterConnection, connect } from '../vcenter.js';

interface RunOptions {
  dryRun?: boolean;
  json?: boolean;
  repo?: string;
}

async function connectionOf(recipe: BackupRecipe): Promise<VcenterConnection> {
  const c = recipe.connection;
  const tls: TlsPolicy = c.insecure ? { kind: 'insecure' }
    : c.thumbprint ? { kind: 'pinned', thumbprint: normalizeThumbprint(c.thumbprint) }
    : { kind: 'system' };
  return { url: c.vcenter, user: c.user, password: await resolvePassword(c), tls };
}

function modes(r: VmResult): string {
  return r.disks?.map((d) => d.mode).join(', ') || '-';
}

export function reportText(recipeName: string, r: BatchReport): string {
  const read = r.vms.reduce((n, v) => n + (v.disks ?? []).reduce((m, d) => m + d.bytesRead, 0), 0);
  const stored = r.vms.reduce((n, v) => n + (v.disks ?? []).reduce((m, d) => m + d.bytesStored, 0), 0);
  const rows = r.vms.map((v) => [
    v.vm, v.ok ? 'ok' : 'FAILED', v.generation !== undefined ? String(v.generation) : '-', modes(v),
    v.disks ? bytes(v.disks.reduce((n, d) => n + d.bytesRead, 0)) : '-',
    v.disks ? bytes(v.disks.reduce((n, d) => n + d.bytesStored, 0)) : '-', duration(v.durationMs),
  ]);
  const limit = r.transferred.limit !== undefined ? `, limit ${bytes(r.transferred.limit)}/s` : '';
  const lines = [
    `recipe ${recipeName}: ${r.succeeded} of ${r.vms.length} VMs backed up in ${duration(r.durationMs)}; ${bytes(read)} read, ${bytes(stored)} stored; ${bytes(r.transferred.bytes)} transferred at ${bytes(r.transferred.bytesPerSecond)}/s${limit}`,
    '',
    table(['VM', 'result', 'generation', 'modes', 'read', 'stored', 'time'], rows),
  ];
  const failed = r.vms.filter((v) => !v.ok);
  if (failed.length > 0) lines.push('', 'failures:', ...failed.map((v) => `  ${v.vm}: ${v.error?.message ?? 'failed'}`));
  const warned = r.vms.filter((v) => v.warnings.length > 0);
  if (warned.length > 0) lines.push('', 'warnings:', ...warned.flatMap((v) => v.warnings.map((w) => `  ${v.vm}: ${w}`)));
  if (r.retention.length > 0) {
    lines.push('', 'retention:', ...r.retention.map((x) => x.error ? `  ${x.set}: failed: ${x.error}`
      : `  ${x.set}: kept ${x.keep!.join(', ')}${x.remove!.length ? `; removed ${x.remove!.join(', ')}` : ''}`));
    if (r.gc) lines.push('error' in r.gc ? `  gc failed: ${r.gc.error}` : `  gc freed ${bytes(r.gc.bytesFreed)}`);
  }
  return lines.join('\n');
}

function planText(recipeName: string, plans: readonly (VmPlan | { vm: string; error: string })[]): string {
  const rows: string[][] = [];
  for (const p of plans) {
    if ('error' in p) {
      rows.push([p.vm, '-', '-', '-', `cannot back up: ${p.error}`]);
      continue;
    }
    for (const d of p.disks) {
      rows.push([p.vm, String(p.generation), `${d.key} (${d.label})`, d.skipped ? 'skip' : d.mode!, d.why ?? '']);
    }
    if (p.cbt !== 'on') rows.push([p.vm, '', '', '', `changed-block tracking ${p.cbt}`]);
    if (p.orphanSnapshots.length > 0) rows.push([p.vm, '', '', '', `would first remove snapshots ${p.orphanSnapshots.join(', ')}`]);
  }
  const vms = plans.filter((p) => !('error' in p)).length;
  return [`recipe ${recipeName} (dry run, nothing was changed): ${vms} VMs would be backed up`, '',
    table(['VM', 'generation', 'disk', 'mode', 'note'], rows)].join('\n');
}

async function dryRun(session: VsphereSession, repo: Repository, recipe: BackupRecipe, targets: readonly BatchTarget[]) {
  const plans: (VmPlan | { vm: string; error: string })[] = [];
  for (const t of targets) {
    if ('unresolved' in t) {
      plans.push({ vm: t.name, error: t.unresolved });
      continue;
    }
    try {
      plans.push(await planVmBackup(session, repo, { name: t.name, ref: new MoRef('VirtualMachine', t.moref) }, {
        mode: recipe.policy.mode, enableCbt: recipe.policy.enableCbt, excludeDisks: t.excludeDisks,
      }));
    } catch (err) {
      plans.push({ vm: t.name, error: describeCause(err) });
    }
  }
  return plans;
}

/** Written beside its final name and renamed, so a reader never sees half a report. */
async function writeReport(file: string, report: unknown): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, JSON.stringify(report, null, 2) + '\n');
    await rename(tmp, file);
  } catch (err) {
    throw new IoError(`writing the run report ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}

export function register(program: Command): void {
  program.command('run')
    .description('run a recipe: back up every VM it names, in parallel, within its bandwidth limit')
    .argument('<recipe>', 'recipe file (YAML; see schema/recipe.schema.json)')
    .option('--dry-run', 'show what would be backed up, and in which mode per disk, changing nothing')
    .action(async (recipePath: string, opts: RunOptions) => {
      const out = new Output(!!opts.json);
      if (opts.repo !== undefined) throw new UsageError('run takes the repository from the recipe, not from --repo');
      const recipe = await loadRecipe(recipePath);
      if (recipe.kind !== 'backup') {
        throw new UsageError(`recipe ${recipePath} is a ${recipe.kind} recipe: only backup recipes can be run so far`);
      }
      const conn = await connectionOf(recipe);
      const repo = await Repository.open(new LocalBackend(recipe.repository));
      const session = await connect(conn);
      try {
        const targets = await resolveTargets(session, recipe.targets);
        if (opts.dryRun) {
          const plans = await dryRun(session, repo, recipe, targets);
          out.result({ dryRun: true, vms: plans }, planText(recipePath, plans));
          const bad = plans.filter((p) => 'error' in p);
          if (bad.length === 0) return;
          const what = `${bad.length} of ${plans.length} targets cannot be backed up: ${bad.map((p) => p.vm).join(', ')}`;
          if (bad.length === plans.length) throw new IoError(`recipe ${recipePath}: ${what}`);
          throw new PartialFailureError(`recipe ${recipePath}: ${what}`);
        }
        const { policy, concurrency, hooks } = recipe;
        const report = await runBackupBatch({
          repo, repoLocation: repo.location, session, targets,
          mode: policy.mode, quiesce: policy.quiesce, memory: policy.memory, enableCbt: policy.enableCbt,
          ...(policy.compressionLevel !== undefined ? { compressionLevel: policy.compressionLevel } : {}),
          openDisk: await diskOpener(conn, policy.transport, { libdir: policy.vddk?.libdir, transports: policy.vddk?.transports }),
          concurrency,
          ...(recipe.bandwidth !== undefined ? { bandwidth: recipe.bandwidth } : {}),
          hooks,
          ...(policy.retention ? { retention: policy.retention } : {}),
          onEvent: (e) => {
            if (e.type === 'warning') out.warn(e.message);
            else if (e.type === 'vm-event' && e.event.type === 'warning') out.warn(`VM ${e.vm}: ${e.event.message}`);
            else if (e.type === 'vm-done' && !e.result.ok) out.warn(`backup of VM ${e.vm} failed: ${e.result.error?.message}`);
          },
        });
        const full = { recipe: path.resolve(recipePath), repository: repo.location, ...report };
        if (recipe.report.json) await writeReport(recipe.report.json, full);
        if (out.json) out.result(full, '');
        else if (recipe.report.summary) out.result(full, reportText(recipePath, report));
        if (report.ok) return;
        const failed = report.vms.filter((v) => !v.ok);
        const what = failed.length > 0
          ? `${failed.length} of ${report.vms.length} VMs failed: ${failed.map((v) => `${v.vm} (${v.error?.message ?? 'failed'})`).join('; ')}`
          : 'every VM was backed up, but retention failed';
        // Exit 1 when nothing was backed up, 3 (partial) when some VMs were.
        if (report.succeeded === 0 && failed.length > 0) throw new IoError(`recipe ${recipePath}: ${what}`);
        throw new PartialFailureError(`recipe ${recipePath}: ${what}`);
      } finally {
        await session.close();
      }
    });
}
