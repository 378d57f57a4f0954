/**
 * Retrying requests to a remote store: exponential backoff with full jitter (the wait is
 * random between 0 and base·2^attempt, capped), so many clients throttled at once do not
 * come back in step. Every retry is counted, by cause, for the job's report.
 */

export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseMs: number;
  readonly capMs: number;
}

/** At most 7 retries and about 13 s of waiting (0.1 s doubling, each wait random below its bound): a throttling burst or a restarting server, not an outage. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 8, baseMs: 100, capMs: 8_000 };

/** Retries made, by cause ("SlowDown", "ECONNRESET", "HTTP 503", …). */
export class RetryCounter {
  private readonly byCause = new Map<string, number>();
  private total = 0;

  add(cause: string): void {
    this.total++;
    this.byCause.set(cause, (this.byCause.get(cause) ?? 0) + 1);
  }

  get count(): number {
    return this.total;
  }

  causes(): Record<string, number> {
    return Object.fromEntries([...this.byCause].sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}

export interface RetryHooks {
  /** The cause to count when err is worth another try; undefined when it is final. */
  retryable(err: unknown): string | undefined;
  readonly counter: RetryCounter;
  readonly policy?: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export function backoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** retry));
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs op until it succeeds, fails for good, or the attempts are spent (then the last error is thrown). */
export async function withRetries<T>(op: (attempt: number) => Promise<T>, hooks: RetryHooks): Promise<T> {
  const policy = hooks.policy ?? DEFAULT_RETRY_POLICY;
  const sleep = hooks.sleep ?? realSleep;
  const random = hooks.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      const cause = hooks.retryable(err);
      if (cause === undefined || attempt + 1 >= policy.attempts) throw err;
      hooks.counter.add(cause);
      await sleep(backoffMs(policy, attempt, random));
    }
  }
}
