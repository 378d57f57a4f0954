/** GET /metrics (auth: a token or a session, like the API). */
import type { ServerApp, ServerContext } from '../context.js';
import { metricsText } from '../metrics.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/metrics', (c) => c.body(metricsText(ctx.db, ctx.jobs.runningIds().length), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }));
}
