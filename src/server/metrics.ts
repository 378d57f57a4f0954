/**
 * /metrics in the Prometheus text format, from the job history: per set (repository, set)
 * the last success time, the last run's duration, bytes read and stored (totals over its
 * runs), failures; each repository's stored bytes (the last sample); running jobs; runs by
 * status.
 */
import type { Db } from './db.js';

interface Family { readonly name: string; readonly type: 'gauge' | 'counter'; readonly help: string; readonly samples: { labels: Record<string, string>; value: number }[] }

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function render(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
      lines.push(`${f.name}${labels ? `{${labels}}` : ''} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function metricsText(db: Db, runningJobs: number): string {
  const sets = db.prepare(`SELECT COALESCE(v.repository, '') AS repository, v.set_name AS setName,
      MAX(CASE WHEN v.status = 'succeeded' THEN v.finished_at END) AS lastSuccess,
      SUM(v.bytes_read) AS bytesRead, SUM(v.bytes_stored) AS bytesStored,
      SUM(CASE WHEN v.status = 'failed' THEN 1 ELSE 0 END) AS failures,
      (SELECT w.duration_ms FROM job_vms w WHERE w.repository IS v.repository AND w.set_name = v.set_name ORDER BY w.rowid DESC LIMIT 1) AS lastDuration
    FROM job_vms v GROUP BY v.repository, v.set_name ORDER BY 1, 2`).all() as
    { repository: string; setName: string; lastSuccess: string | null; bytesRead: number; bytesStored: number; failures: number; lastDuration: number | null }[];
  const repos = db.prepare(`SELECT u.repository AS repository, u.stored_bytes AS stored FROM repo_usage u
    WHERE u.rowid = (SELECT MAX(rowid) FROM repo_usage x WHERE x.repository = u.repository) ORDER BY 1`).all() as { repository: string; stored: number }[];
  const runs = db.prepare("SELECT status, COUNT(*) AS n FROM jobs WHERE status NOT IN ('running', 'queued') GROUP BY status ORDER BY 1").all() as { status: string; n: number }[];
  const label = (s: { repository: string; setName: string }) => ({ repository: s.repository, set: s.setName });
  return render([
    { name: 'vmbkp_set_last_success_timestamp_seconds', type: 'gauge', help: 'When the set last got a generation (Unix time).',
      samples: sets.filter((s) => s.lastSuccess).map((s) => ({ labels: label(s), value: Date.parse(s.lastSuccess!) / 1000 })) },
    { name: 'vmbkp_set_last_duration_seconds', type: 'gauge', help: 'How long the set\'s last backup took.',
      samples: sets.filter((s) => s.lastDuration !== null).map((s) => ({ labels: label(s), value: s.lastDuration! / 1000 })) },
    { name: 'vmbkp_set_bytes_read_total', type: 'counter', help: 'Bytes read from the set\'s disks by the server\'s backups.',
      samples: sets.map((s) => ({ labels: label(s), value: s.bytesRead })) },
    { name: 'vmbkp_set_bytes_stored_total', type: 'counter', help: 'Bytes the set\'s backups added to the repository (new, compressed).',
      samples: sets.map((s) => ({ labels: label(s), value: s.bytesStored })) },
    { name: 'vmbkp_set_failures_total', type: 'counter', help: 'Failed backups of the set.',
      samples: sets.map((s) => ({ labels: label(s), value: s.failures })) },
    { name: 'vmbkp_repository_stored_bytes', type: 'gauge', help: 'Bytes the repository holds (last sample, taken after each job).',
      samples: repos.map((r) => ({ labels: { repository: r.repository }, value: r.stored })) },
    { name: 'vmbkp_jobs_running', type: 'gauge', help: 'Jobs running now.', samples: [{ labels: {}, value: runningJobs }] },
    { name: 'vmbkp_job_runs_total', type: 'counter', help: 'Jobs ended, by status.', samples: runs.map((r) => ({ labels: { status: r.status }, value: r.n })) },
  ]);
}
