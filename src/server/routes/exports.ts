/**
 * NBD exports of a generation's disk (`vmbkp serve` inside the server): started by an
 * operator, listed, stopped. They live as long as the server process.
 */
import { z } from 'zod';
import { InputError } from '../../errors.js';
import { requireRole } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { exportsOf } from '../exports.js';

const exportSchema = z.strictObject({
  repository: z.string().min(1), set: z.string().min(1), disk: z.string().min(1),
  generation: z.union([z.string().min(1), z.number().int().positive()]).default('latest').transform(String),
  /** unix (default): a socket in a private directory on the server's host; tcp: 127.0.0.1, a free port. */
  listen: z.enum(['unix', 'tcp']).default('unix'),
});

export function register(app: ServerApp, ctx: ServerContext): void {
  const exports = exportsOf(ctx);
  app.get('/api/v1/exports', (c) => c.json(exports.list()));

  app.post('/api/v1/exports', async (c) => {
    const principal = c.get('principal');
    requireRole(principal, 'operator', 'starting an export');
    const parsed = exportSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InputError(`export: ${issue.path.join('.') || 'the body'}: ${issue.message}`);
    }
    const p = parsed.data;
    const repo = await ctx.repositories.open(p.repository);
    const info = await exports.start({
      repository: p.repository, repo, set: p.set, generation: p.generation, disk: p.disk, listen: p.listen, user: principal.user,
      onWarning: (m) => ctx.log.warn(`export of ${p.set} disk ${p.disk}: ${m}`),
    });
    // Its job lasts as long as it serves (exports.ts).
    const job = ctx.jobs.start('export', {
      kind: 'export', exportId: info.id, repository: p.repository, set: info.set, generation: info.generation, disk: info.disk, uri: info.uri,
    }, { user: principal.user, trigger: 'api' });
    c.set('auditSummary', `export ${info.id} (job ${job}) of ${p.repository} set ${info.set} generation ${info.generation} disk ${info.disk} at ${info.uri}`);
    ctx.log.info(`user ${principal.user} exported ${p.repository} set ${info.set} generation ${info.generation} disk ${info.disk} at ${info.uri}`);
    return c.json({ ...info, job }, 201);
  });

  app.delete('/api/v1/exports/:id', async (c) => {
    const principal = c.get('principal');
    requireRole(principal, 'operator', 'stopping an export');
    const info = await exports.stop(c.req.param('id'));
    c.set('auditSummary', `stopped export ${info.id} (${info.uri})`);
    return c.json(info);
  });
}
