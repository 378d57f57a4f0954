/** Jobs: the history, one job, its log, its live events (SSE), starting one and cancelling one. */
import { streamSSE } from 'hono/streaming';
import { requireRole } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { HttpError, badRequest, notFound } from '../http-error.js';
import { FINAL_STATUSES, type JobEvent, type JobStatus } from '../jobs.js';
import { jsonBody, limitParam } from './body.js';

const STATUSES: readonly JobStatus[] = ['queued', 'running', ...FINAL_STATUSES];

function jobId(s: string): number {
  if (!/^\d+$/.test(s)) throw badRequest(`job id must be a number (got ${JSON.stringify(s)})`);
  return Number(s);
}

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/jobs', (c) => {
    const status = c.req.query('status');
    if (status !== undefined && !STATUSES.includes(status as JobStatus)) throw badRequest(`status must be one of ${STATUSES.join(', ')}`);
    const kind = c.req.query('kind');
    const schedule = c.req.query('schedule');
    return c.json(ctx.jobs.list({
      limit: limitParam(c), ...(status ? { status } : {}), ...(kind ? { kind } : {}), ...(schedule ? { schedule } : {}),
    }));
  });

  app.get('/api/v1/jobs/:id', (c) => {
    const id = jobId(c.req.param('id'));
    const d = ctx.jobs.detail(id);
    if (!d) throw notFound(`job ${id} does not exist`);
    return c.json({ ...d, progress: ctx.jobs.lastProgress(id) ?? null });
  });

  app.get('/api/v1/jobs/:id/log', (c) => {
    const id = jobId(c.req.param('id'));
    if (!ctx.jobs.summary(id)) throw notFound(`job ${id} does not exist`);
    return c.json(ctx.jobs.log(id));
  });

  // The log so far, then live progress and log lines, then `end` with the job's summary.
  app.get('/api/v1/jobs/:id/events', (c) => {
    const id = jobId(c.req.param('id'));
    const first = ctx.jobs.summary(id);
    if (!first) throw notFound(`job ${id} does not exist`);
    return streamSSE(c, async (stream) => {
      const queue: JobEvent[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = ctx.jobs.subscribe(id, (e) => {
        queue.push(e);
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      try {
        for (const entry of ctx.jobs.log(id)) await stream.writeSSE({ event: 'log', data: JSON.stringify(entry) });
        const p = ctx.jobs.lastProgress(id);
        if (p) await stream.writeSSE({ event: 'progress', data: JSON.stringify(p) });
        // Ended before we subscribed: nothing more will come.
        if (!ctx.jobs.isRunning(id) && queue.length === 0) {
          await stream.writeSSE({ event: 'end', data: JSON.stringify(ctx.jobs.summary(id)) });
          return;
        }
        while (!stream.aborted) {
          const e = queue.shift();
          if (!e) {
            await new Promise<void>((resolve) => { wake = resolve; });
            wake = undefined;
            continue;
          }
          await stream.writeSSE({ event: e.type, data: JSON.stringify(e.data) });
          if (e.type === 'end') break;
        }
      } finally {
        unsubscribe();
      }
    });
  });

  app.post('/api/v1/jobs', async (c) => {
    const p = c.get('principal');
    const body = await jsonBody(c);
    const kindName = typeof body['kind'] === 'string' ? body['kind'] : '';
    const kind = ctx.jobs.kind(kindName);
    requireRole(p, kind?.role ?? 'operator', `starting a ${kindName || 'job'}`);
    const { params } = ctx.jobs.parse(kindName, body);
    const schedule = typeof params['schedule'] === 'string' ? params['schedule'] : undefined;
    if (schedule !== undefined) {
      const running = ctx.scheduler.runningJob(schedule);
      if (running !== undefined) throw new HttpError(409, 'ALREADY_RUNNING', `schedule ${schedule} is already running (job ${running})`);
    }
    const id = ctx.jobs.start(kindName, body, { user: p.user, trigger: 'api' });
    if (schedule !== undefined) ctx.scheduler.claim(schedule, id);
    c.set('auditSummary', `started job ${id}: ${kindName} ${ctx.jobs.summary(id)?.name ?? ''}`.trim());
    return c.json({ id }, 202);
  });

  app.post('/api/v1/jobs/:id/cancel', (c) => {
    requireRole(c.get('principal'), 'operator', 'cancelling a job');
    const id = jobId(c.req.param('id'));
    ctx.jobs.cancel(id);
    c.set('auditSummary', `cancelled job ${id}`);
    return c.json({ id, cancelling: true }, 202);
  });
}
