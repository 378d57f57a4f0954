/** The kinds of job the server runs: one line per kind (recipe runs here; verify, prune, restores beside it). */
import type { ServerContext } from './context.js';
import { recipeJobKind } from './recipe-job.js';

export function registerJobKinds(ctx: ServerContext): void {
  ctx.jobs.register(recipeJobKind(ctx.config, ctx.configFile, ctx.repositories));
}
