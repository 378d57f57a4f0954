/** `vmbkp run` of a backup recipe: what the run and the dry run report, shown. */
import type { BatchReport, VmResult } from '../app/backup-vms.js';
import { type UnplannedVm, type VmPlan, planBackupRecipe } from '../app/dry-run.js';
import { type CopyOutcome, runBackupRecipe as runRecipe } from '../app/run-recipe.js';
import { type VcenterLogin, openVcenterJob } from '../app/vcenter.js';
import type { BackupRecipe } from '../recipe/index.js';
import type { Output } from './context.js';
import { copySummary } from './copy-report.js';
import { bytes, duration, table } from './format.js';

function modes(r: VmResult): string {
  return r.disks?.map((d) => d.mode).join(', ') || '-';
}

function copyText(c: CopyOutcome): string {
  if (!c.ok) return `copy to ${c.to} failed: ${c.error?.message ?? 'failed'}`;
  if (!c.report) return `copy to ${c.to}: nothing to copy (no VM was backed up)`;
  return `copy to ${c.to}: ${copySummary(c.report)}`;
}

export function reportText(recipeName: string, r: BatchReport & { readonly copy?: CopyOutcome }): string {
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
  if (r.copy) lines.push('', copyText(r.copy));
  return lines.join('\n');
}

function planText(recipeName: string, plans: readonly (VmPlan | UnplannedVm)[]): string {
  const vms = plans.filter((p) => !('error' in p)).length;
  return [`recipe ${recipeName} (dry run, nothing was changed): ${vms} VMs would be backed up`, '', backupPlanTable(plans)].join('\n');
}

/** Each VM's disks and modes, and what else the backup would do (`run --dry-run`, `backup --vcenter --dry-run`). */
export function backupPlanTable(plans: readonly (VmPlan | UnplannedVm)[]): string {
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
    for (const note of p.notes ?? []) rows.push([p.vm, '', '', '', note]);
  }
  return table(['VM', 'generation', 'disk', 'mode', 'note'], rows);
}

export async function runBackupRecipe(recipePath: string, recipe: BackupRecipe, dryRunOnly: boolean, out: Output, login: VcenterLogin,
  repositoryPassword: (() => Promise<string>) | undefined, copyPassword?: () => Promise<string>): Promise<void> {
  const job = await openVcenterJob(login, recipe.repository.path, repositoryPassword);
  try {
    if (dryRunOnly) {
      const plan = await planBackupRecipe(job, recipePath, recipe);
      const copy = recipe.copy ? { to: recipe.copy.to.path, sets: recipe.copy.sets ?? null } : undefined;
      out.result({ dryRun: true, vms: plan.vms, ...(copy ? { copy } : {}) }, planText(recipePath, plan.vms)
        + (copy ? `\n\nthen copy to ${copy.to} the generations it lacks of ${copy.sets ? `sets ${copy.sets.join(', ')}` : 'the sets backed up'}` : ''));
      if (plan.failure) throw plan.failure;
      return;
    }
    const run = await runRecipe(job, recipePath, recipe, (e) => {
      if (e.type === 'warning') out.warn(e.message);
      else if (e.type === 'vm-event' && e.event.type === 'warning') out.warn(`VM ${e.vm}: ${e.event.message}`);
      else if (e.type === 'vm-done' && !e.result.ok) out.warn(`backup of VM ${e.vm} failed: ${e.result.error?.message}`);
      else if (e.type === 'copy-event' && e.event.type === 'warning') out.warn(`copy: ${e.event.message}`);
    }, copyPassword);
    if (out.json) out.result(run.report, '');
    else if (recipe.report.summary) out.result(run.report, reportText(recipePath, run.report));
    out.retries(job.repo);
    if (run.failure) throw run.failure;
  } finally {
    await job.close();
  }
}
