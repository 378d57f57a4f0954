/** Sets and generations of a repository, in the CLI's JSON shapes (list --json, show --json) plus each generation's figures. */
import { listSets } from '../../app/list.js';
import { setGenerations } from '../../app/set-generations.js';
import { showGeneration } from '../../app/show.js';
import type { ServerApp, ServerContext } from '../context.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/repositories/:repo/sets', async (c) => {
    const repo = await ctx.repositories.open(c.req.param('repo'));
    return c.json(await listSets(repo));
  });

  app.get('/api/v1/repositories/:repo/sets/:set/generations', async (c) => {
    const repo = await ctx.repositories.open(c.req.param('repo'));
    return c.json(await setGenerations(repo, c.req.param('set')));
  });

  app.get('/api/v1/repositories/:repo/sets/:set/generations/:gen', async (c) => {
    const repo = await ctx.repositories.open(c.req.param('repo'));
    return c.json(await showGeneration(repo, c.req.param('set'), c.req.param('gen')));
  });
}
