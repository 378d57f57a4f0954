/**
 * What a restore or prune would do, found by reading only (the CLI's --dry-run): the same
 * body as POST /jobs, the same shape as the CLI's dry-run JSON. Nothing is locked or changed.
 */
import { runPrune } from '../../app/prune-run.js';
import { planDiskRestore } from '../../app/restore-disk.js';
import { planVmRestoreRun } from '../../app/restore-vm.js';
import { InputError } from '../../errors.js';
import { requireRole } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { pruneTarget, vcenterJobFor, vmRestoreSpec } from '../resource-jobs.js';
import { diskTargetUri, parsePrune, parseRestoreDisk, parseRestoreVm } from '../resource-params.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.post('/api/v1/preview', async (c) => {
    requireRole(c.get('principal'), 'operator', 'previewing a restore or prune');
    const body = await c.req.json().catch(() => undefined) as unknown;
    const kind = body !== null && typeof body === 'object' ? (body as { kind?: unknown }).kind : undefined;
    if (kind === 'restore-disk') {
      const p = parseRestoreDisk(body, true);
      const repo = await ctx.repositories.open(p.repository);
      return c.json(await planDiskRestore({ repo, set: p.set, generation: p.generation, disk: p.disk, to: diskTargetUri(p), overwrite: p.overwrite }));
    }
    if (kind === 'prune') {
      const p = parsePrune(body, true);
      const repo = await ctx.repositories.open(p.repository);
      const run = await runPrune({ repo, target: await pruneTarget(ctx, p), dryRun: true, gc: p.gc });
      return c.json(run.json);
    }
    if (kind === 'restore-vm') {
      const p = parseRestoreVm(body);
      const repo = await ctx.repositories.open(p.repository);
      const vc = await vcenterJobFor(ctx, p.vcenter, repo);
      try {
        return c.json(await planVmRestoreRun(vc, vmRestoreSpec(p), p.transport));
      } finally {
        await vc.close();
      }
    }
    throw new InputError(`preview: kind ${JSON.stringify(kind)} is not one of restore-disk, restore-vm, prune`);
  });
}
