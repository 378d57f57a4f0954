/**
 * The HTTP app (hono): the audit log around every request, then auth, then the route
 * modules (src/server/routes/*.ts, each `register(app, ctx)`). Errors become the JSON of
 * http-error.ts; a body of a mutating request is never logged or audited as such.
 */
import { Hono } from 'hono';
import { authMiddleware, viewerReadOnly } from './auth.js';
import type { ServerApp, ServerContext, ServerEnv } from './context.js';
import { now } from './db.js';
import { errorResponse } from './http-error.js';
import { ROUTES } from './routes/index.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function buildApp(ctx: ServerContext): ServerApp {
  const app = new Hono<ServerEnv>();
  const insertAudit = ctx.db.prepare('INSERT INTO audit (time, user, method, path, status, summary) VALUES (?, ?, ?, ?, ?, ?)');
  // Every mutating request (and every download), refused ones included: who, what, and how it ended. Route
  // handlers set `auditSummary` to say what was done (never a secret).
  app.use('*', async (c, next) => {
    await next();
    // A GET that reads backed-up data (a file download) sets auditSummary to be audited too.
    if (!MUTATING.has(c.req.method) && c.get('auditSummary') === undefined) return;
    const p = c.get('principal') as ServerEnv['Variables']['principal'] | undefined;
    const summary = (c.get('auditSummary') as string | undefined) ?? `${c.req.method} ${c.req.path}`;
    try {
      insertAudit.run(now(), p?.user ?? null, c.req.method, c.req.path, c.res.status, summary);
    } catch (err) {
      ctx.log.error(`writing the audit log failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  app.use('*', async (c, next) => {
    await next();
    // No page of this server may be framed or sniffed; the API's answers are never cached.
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'no-referrer');
    if (c.req.path.startsWith('/api/') || c.req.path === '/metrics') c.header('Cache-Control', 'no-store');
  });
  app.use('*', authMiddleware(ctx.db));
  app.use('*', viewerReadOnly());
  app.onError((err, c) => {
    const { status, body } = errorResponse(err);
    if (status >= 500) ctx.log.error(`${c.req.method} ${c.req.path}: ${body.error.message}`);
    return c.json(body, status);
  });
  for (const register of ROUTES) register(app, ctx);
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `${c.req.method} ${c.req.path}: no such endpoint` } }, 404));
  return app;
}
