/**
 * GET /api/v1/overview: per set its last job, last success and generation (failures
 * first), the repositories' size, the schedules and what runs now. From the job history
 * and the size samples: no repository is opened for it.
 */
import type { ServerApp, ServerContext } from '../context.js';
import type { JobSummary } from '../jobs.js';

interface SetRow { repository: string | null; setName: string; lastJobId: number; lastSuccessAt: string | null; lastStatus: string }

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/overview', (c) => {
    const rows = ctx.db.prepare(`SELECT v.repository AS repository, v.set_name AS setName, MAX(v.job_id) AS lastJobId,
        MAX(CASE WHEN v.status = 'succeeded' THEN v.finished_at END) AS lastSuccessAt,
        (SELECT w.status FROM job_vms w WHERE w.repository IS v.repository AND w.set_name = v.set_name ORDER BY w.rowid DESC LIMIT 1) AS lastStatus
      FROM job_vms v GROUP BY v.repository, v.set_name`).all() as SetRow[];
    const lastGen = ctx.db.prepare(`SELECT generation, finished_at AS time, mode FROM job_vms WHERE repository IS ? AND set_name = ? AND status = 'succeeded'
      ORDER BY rowid DESC LIMIT 1`);
    const count = ctx.db.prepare("SELECT COUNT(*) AS n FROM job_vms WHERE repository IS ? AND set_name = ? AND status = 'succeeded'");
    const jobs = new Map<number, JobSummary | undefined>();
    const sets = rows.map((r) => {
      if (!jobs.has(r.lastJobId)) jobs.set(r.lastJobId, ctx.jobs.summary(r.lastJobId));
      const g = lastGen.get(r.repository, r.setName) as { generation: number | null; time: string; mode: string | null } | undefined;
      return {
        repository: r.repository, set: r.setName, lastJob: jobs.get(r.lastJobId) ?? null, lastStatus: r.lastStatus, lastSuccessAt: r.lastSuccessAt,
        // Generations the server made; the repository's own list is under /repositories/{repo}/sets.
        generations: (count.get(r.repository, r.setName) as { n: number }).n,
        lastGeneration: g && g.generation !== null ? { id: g.generation, time: g.time, mode: g.mode } : null,
      };
    }).sort((a, b) => Number(b.lastStatus === 'failed') - Number(a.lastStatus === 'failed') || a.set.localeCompare(b.set));
    const repositories = ctx.repositories.list().map((r) => {
      const u = ctx.db.prepare('SELECT stored_bytes AS stored, dedup_ratio AS dedup FROM repo_usage WHERE repository = ? ORDER BY rowid DESC LIMIT 1')
        .get(r.name) as { stored: number; dedup: number | null } | undefined;
      return { name: r.name, storedBytes: u?.stored ?? null, dedupRatio: u?.dedup ?? null };
    });
    const running = ctx.jobs.runningIds().map((id) => ctx.jobs.summary(id)).filter((j): j is JobSummary => j !== undefined);
    return c.json({ sets, repositories, schedules: ctx.scheduler.list(), running });
  });
}
