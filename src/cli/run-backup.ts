/** `vmbkp run` of a backup recipe: VMs in parallel, the dry run, the report. */
import path from 'node:path';
import { PartialFailureError, describeCause } from '../errors.js';
import { type BatchReport, type BatchTarget, type VmResult, runBackupBatch } from '../jobs/backup-batch.js';
import { type VmPlan, planVmBackup } from '../jobs/plan-vm.js';
import type { BackupRecipe } from '../recipe/index.js';
import { resolveTargets } from '../recipe/resolve-targets.js';
import { Repository } from '../repository/repository.js';
import { LocalBackend } from '../storage/local.js';
import type { VsphereSession } from '../vsphere/session.js';
import { MoRef } from '../vsphere/xml.js';
import { diskOpener } from './backup-vm.js';
import type { Output } from './context.js';
import { connectionOf, runFailure, writeReport } from './recipe-common.js';
import { bytes, duration, table } from './format.js';
import { connect } from './vcenter.js';

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

export async function runBackupRecipe(recipePath: string, recipe: BackupRecipe, dryRunOnly: boolean, out: Output): Promise<void> {
  const conn = await connectionOf(recipe.connection);
  const repo = await Repository.open(new LocalBackend(recipe.repository));
  const session = await connect(conn);
  try {
    const targets = await resolveTargets(session, recipe.targets);
    if (dryRunOnly) {
      const plans = await dryRun(session, repo, recipe, targets);
      out.result({ dryRun: true, vms: plans }, planText(recipePath, plans));
      const bad = plans.filter((p): p is { vm: string; error: string } => 'error' in p);
      if (bad.length > 0) throw runFailure(recipePath, plans.length, bad.map((p) => ({ name: p.vm, cause: p.error })), 'targets', 'cannot be backed up');
      return;
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
      ...(recipe.connection.passwordEnv !== undefined ? { secretEnv: [recipe.connection.passwordEnv] } : {}),
      ...(policy.retention ? { retention: policy.retention } : {}),
      onEvent: (e) => {
        if (e.type === 'warning') out.warn(e.message);
        else if (e.type === 'vm-event' && e.event.type === 'warning') out.warn(`VM ${e.vm}: ${e.event.message}`);
        else if (e.type === 'vm-done' && !e.result.ok) out.warn(`backup of VM ${e.vm} failed: ${e.result.error?.message}`);
      },
    });
    const full = { kind: 'backup', recipe: path.resolve(recipePath), repository: repo.location, ...report };
    if (recipe.report.json) await writeReport(recipe.report.json, full);
    if (out.json) out.result(full, '');
    else if (recipe.report.summary) out.result(full, reportText(recipePath, report));
    if (report.ok) return;
    const failed = report.vms.filter((v) => !v.ok);
    if (failed.length === 0) throw new PartialFailureError(`recipe ${recipePath}: every VM was backed up, but retention failed`);
    throw runFailure(recipePath, report.vms.length, failed.map((v) => ({ name: v.vm, cause: v.error?.message ?? 'failed' })), 'VMs');
  } finally {
    await session.close();
  }
}
