/** The audit log (admin): every mutating request, newest first. */
import { requireRole } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { limitParam } from './body.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/audit', (c) => {
    requireRole(c.get('principal'), 'admin', 'reading the audit log');
    return c.json(ctx.db.prepare('SELECT time, user, method, path, status, summary FROM audit ORDER BY id DESC LIMIT ?').all(limitParam(c, 100)));
  });
}
