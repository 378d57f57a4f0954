/**
 * Repository size samples (repo_usage) for growth charts and the size metric: taken after
 * each job on a configured repository, from `status` (a listing and the index; no pack is
 * read). A repository the server cannot open is skipped with a log line.
 */
import { repositoryStatus } from '../app/status.js';
import type { ServerContext } from './context.js';
import { now } from './db.js';
import type { JobSummary } from './jobs.js';

export async function recordUsage(ctx: ServerContext, name: string): Promise<void> {
  const repo = await ctx.repositories.open(name);
  const s = await repositoryStatus(repo);
  ctx.db.prepare('INSERT INTO repo_usage (repository, time, stored_bytes, logical_bytes, dedup_ratio) VALUES (?, ?, ?, ?, ?)')
    .run(name, now(), s.storage.bytes, s.logicalBytes, s.dedupRatio);
}

export async function sampleRepositoryUsage(ctx: ServerContext, job: JobSummary): Promise<void> {
  if (job.repository === null || job.status === 'missed') return;
  if (!ctx.repositories.list().some((r) => r.name === job.repository)) return;
  try {
    await recordUsage(ctx, job.repository);
  } catch (err) {
    ctx.log.warn(`sampling the size of repository ${job.repository} after job ${job.id} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
