/**
 * Alerts: a JSON POST to the configured webhook for every failed (or partial) and missed
 * run. A failing webhook is logged, never retried into a storm, never fails the job.
 */
import type { JobSummary } from './jobs.js';

export interface AlertMessage {
  readonly event: 'job.failed' | 'job.partial' | 'job.missed' | 'job.interrupted';
  readonly text: string;
  readonly job: JobSummary;
}

const ALERTED = new Set(['failed', 'partial', 'missed', 'interrupted']);

export function alertFor(job: JobSummary): AlertMessage | undefined {
  if (!ALERTED.has(job.status)) return undefined;
  const failedVms = job.vms.filter((v) => v.status === 'failed');
  const detail = job.error?.message ?? (failedVms.length ? failedVms.map((v) => `${v.name}: ${v.error?.message ?? 'failed'}`).join('; ') : job.status);
  return { event: `job.${job.status}` as AlertMessage['event'], text: `vmbkp job ${job.id} (${job.kind} ${job.name}) ${job.status}: ${detail}`, job };
}

export async function sendWebhook(url: string, message: AlertMessage, timeoutMs = 10_000): Promise<void> {
  const res = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'User-Agent': 'vmbkp-server' }, body: JSON.stringify(message),
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`the webhook answered ${res.status} ${res.statusText}`);
}

/** The listener the job runner calls after each job; `log` gets a line when the webhook fails. */
export function webhookAlerts(url: string | undefined, log: { warn(m: string): void }): (job: JobSummary) => Promise<void> {
  return async (job) => {
    if (url === undefined) return;
    const m = alertFor(job);
    if (!m) return;
    try {
      await sendWebhook(url, m);
    } catch (err) {
      // The URL may hold a secret (a token in its path): name the host only.
      log.warn(`alert for job ${job.id} to webhook ${new URL(url).host} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}
