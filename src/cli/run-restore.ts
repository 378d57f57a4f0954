/** `vmbkp run` of a restore recipe: what the run and the dry run report, shown. */
import { planRestoreRecipe } from '../app/dry-run.js';
import { type RestoreRunReport, runRestoreRecipe as runRecipe } from '../app/run-recipe.js';
import { type VcenterLogin, openVcenterJob } from '../app/vcenter.js';
import type { RestoreRecipe } from '../recipe/index.js';
import type { Output } from './context.js';
import { bytes, duration, table } from './format.js';
import { stopOnSignals } from './stop-signals.js';

function reportText(recipePath: string, r: RestoreRunReport): string {
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

export async function runRestoreRecipe(recipePath: string, recipe: RestoreRecipe, dryRunOnly: boolean, out: Output, login: VcenterLogin,
  repositoryPassword: (() => Promise<string>) | undefined): Promise<void> {
  const job = await openVcenterJob(login, recipe.repository.path, repositoryPassword);
  const stop = stopOnSignals((sig) => out.warn(`${sig}: stopping the restores; an incomplete new VM is removed`));
  try {
    if (dryRunOnly) {
      const plan = await planRestoreRecipe(job, recipePath, recipe);
      out.result({ dryRun: true, restores: plan.restores }, [
        `recipe ${recipePath} (dry run, nothing was changed):`, '',
        table(['VM', 'set', 'generation', 'note'], plan.restores.map((p) => [p.name, p.set, p.generation !== undefined ? String(p.generation) : '-',
          p.error ?? (p.overwrite ? 'its disks would be overwritten' : 'would be created')])),
      ].join('\n'));
      if (plan.failure) throw plan.failure;
      return;
    }
    const run = await runRecipe(job, recipePath, recipe, stop.signal,
      ({ name, event }) => { if (event.type === 'warning') out.warn(`VM ${name}: ${event.message}`); });
    if (out.json) out.result(run.report, '');
    else if (recipe.report.summary) out.result(run.report, reportText(recipePath, run.report));
    out.retries(job.repo);
    if (run.failure) throw run.failure;
  } finally {
    stop.dispose();
    await job.close();
  }
}
