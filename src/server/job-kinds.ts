/** The kinds of job the server runs: one line per kind (recipe runs here; verify, prune, restores beside it). */
import type { ServerContext } from './context.js';
import { recipeJobKind } from './recipe-job.js';
import { exportJobKind } from './exports.js';
import { resourceJobKinds } from './resource-jobs.js';

export function registerJobKinds(ctx: ServerContext): void {
  ctx.jobs.register(recipeJobKind(ctx.config, ctx.configFile, ctx.repositories));
  for (const kind of [...resourceJobKinds(ctx), exportJobKind(ctx)]) ctx.jobs.register(kind);
}
