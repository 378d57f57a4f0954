/** `vmbkp run` of a restore recipe: VMs restored one after the other, a report. */
import path from 'node:path';
import { describeCause } from '../errors.js';
import { type RestoreBatchReport, type RestoreSpec, runRestoreBatch } from '../jobs/restore-batch.js';
import { resolveGeneration } from '../jobs/resolve.js';
import type { RestoreRecipe } from '../recipe/index.js';
import { Repository } from '../repository/repository.js';
import { LocalBackend } from '../storage/local.js';
import { findVm } from '../vsphere/inventory.js';
import type { Output } from './context.js';
import { bytes, duration, table } from './format.js';
import { connectionOf, runFailure, writeReport } from './recipe-common.js';
import { vmDiskOpener } from './restore-vm.js';
import { stopOnSignals } from './stop-signals.js';
import { connect } from './vcenter.js';

function specOf(r: RestoreRecipe['restores'][number]): RestoreSpec {
  return {
    set: r.set, generation: String(r.generation), name: r.name, datastore: r.datastore, host: r.host, folder: r.folder,
    resourcePool: r.resourcePool, network: r.network, powerOn: r.powerOn, keepIdentity: r.keepIdentity, overwrite: r.overwrite,
  };
}

function reportText(recipePath: string, r: RestoreBatchReport): string {
  const rows = r.restores.map((x) => [
    x.name, `${x.set} ${x.result ? x.result.generation : ''}`.trim(), x.ok ? 'ok' : 'FAILED', x.result?.moref ?? '-',
    x.result ? bytes(x.result.disks.reduce((n, d) => n + d.size, 0)) : '-', x.result ? (x.result.poweredOn ? 'on' : 'off') : '-',
  ]);
  const lines = [
    `recipe ${recipePath}: ${r.succeeded} of ${r.restores.length} VMs restored in ${duration(r.durationMs)}, every disk checked against its digests`,
    '', table(['VM', 'from', 'result', 'moref', 'disks', 'power'], rows),
  ];
  const failed = r.restores.filter((x) => !x.ok);
  if (failed.length > 0) lines.push('', 'failures:', ...failed.map((x) => `  ${x.name}: ${x.error?.message ?? 'failed'}`));
  return lines.join('\n');
}

/** What --dry-run says of each restore: the generation it would use, and whether the name is free. */
interface RestorePlan { name: string; set: string; generation?: number; overwrite?: boolean; error?: string }

async function plan(recipe: RestoreRecipe, repo: Repository, session: Awaited<ReturnType<typeof connect>>): Promise<RestorePlan[]> {
  const out: RestorePlan[] = [];
  for (const r of recipe.restores) {
    try {
      const m = await resolveGeneration(repo, r.set, String(r.generation));
      const existing = await findVm(session, r.name).then(() => true, () => false);
      const problem = existing && !r.overwrite ? `a VM named ${r.name} exists (set overwrite: true to write its disks)` : undefined;
      out.push({ name: r.name, set: r.set, generation: m.generation, overwrite: existing, ...(problem ? { error: problem } : {}) });
    } catch (err) {
      out.push({ name: r.name, set: r.set, error: describeCause(err) });
    }
  }
  return out;
}

export async function runRestoreRecipe(recipePath: string, recipe: RestoreRecipe, dryRunOnly: boolean, out: Output): Promise<void> {
  const conn = await connectionOf(recipe.connection);
  const repo = await Repository.open(new LocalBackend(recipe.repository));
  const session = await connect(conn);
  const stop = stopOnSignals((sig) => out.warn(`${sig}: stopping the restores; an incomplete new VM is removed`));
  try {
    if (dryRunOnly) {
      const plans = await plan(recipe, repo, session);
      out.result({ dryRun: true, restores: plans }, [
        `recipe ${recipePath} (dry run, nothing was changed):`, '',
        table(['VM', 'set', 'generation', 'note'], plans.map((p) => [p.name, p.set, p.generation !== undefined ? String(p.generation) : '-',
          p.error ?? (p.overwrite ? 'its disks would be overwritten' : 'would be created')])),
      ].join('\n'));
      const bad = plans.filter((p) => p.error !== undefined);
      if (bad.length > 0) throw runFailure(recipePath, plans.length, bad.map((p) => ({ name: p.name, cause: p.error! })), 'restores', 'cannot be done');
      return;
    }
    const report = await runRestoreBatch({
      repo, session, restores: recipe.restores.map(specOf),
      openDisk: await vmDiskOpener(conn, recipe.transport, { libdir: recipe.vddk?.libdir, transports: recipe.vddk?.transports }),
      writesWholeDisk: recipe.transport === 'https', signal: stop.signal,
      onEvent: ({ name, event }) => { if (event.type === 'warning') out.warn(`VM ${name}: ${event.message}`); },
    });
    const full = { kind: 'restore', recipe: path.resolve(recipePath), repository: repo.location, ...report };
    if (recipe.report.json) await writeReport(recipe.report.json, full);
    if (out.json) out.result(full, '');
    else if (recipe.report.summary) out.result(full, reportText(recipePath, report));
    const failed = report.restores.filter((x) => !x.ok);
    if (failed.length > 0) throw runFailure(recipePath, report.restores.length, failed.map((x) => ({ name: x.name, cause: x.error?.message ?? 'failed' })), 'restores');
  } finally {
    stop.dispose();
    await session.close();
  }
}
