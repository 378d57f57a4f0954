/** Repositories: the list with size and dedup ratio, one repository's `status --json`, and its growth over time. */
import { repositoryStatus } from '../../app/status.js';
import { errorRecord } from '../../errors.js';
import type { ServerApp, ServerContext } from '../context.js';
import { addResourceOpenApi } from '../openapi-resources.js';

interface UsageRow { time: string; stored_bytes: number; logical_bytes: number | null }

export function register(app: ServerApp, ctx: ServerContext): void {
  addResourceOpenApi();
  app.get('/api/v1/repositories', async (c) => {
    const out = [];
    for (const r of ctx.repositories.list()) {
      try {
        const s = await repositoryStatus(await ctx.repositories.open(r.name));
        out.push({ name: r.name, location: r.repo, storedBytes: s.storage.bytes, dedupRatio: s.dedupRatio, error: null });
      } catch (err) {
        // One repository that cannot be opened does not hide the others.
        out.push({ name: r.name, location: r.repo, storedBytes: null, dedupRatio: null, error: errorRecord(err) });
      }
    }
    return c.json(out);
  });

  app.get('/api/v1/repositories/:repo', async (c) => {
    const repo = await ctx.repositories.open(c.req.param('repo'));
    return c.json(await repositoryStatus(repo));
  });

  app.get('/api/v1/repositories/:repo/growth', (c) => {
    const name = ctx.repositories.get(c.req.param('repo')).name;
    const rows = ctx.db.prepare('SELECT time, stored_bytes, logical_bytes FROM repo_usage WHERE repository = ? ORDER BY time').all(name) as UsageRow[];
    return c.json(rows.map((r) => ({ time: r.time, storedBytes: r.stored_bytes, logicalBytes: r.logical_bytes })));
  });
}
