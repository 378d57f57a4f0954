/**
 * A bandwidth limit shared by every stream of a run: a token bucket in bytes. Streams
 * `await limiter.take(n)` around each read. Waiters are served first come, first served
 * (a small request does not overtake a large one, so no stream starves), on one timer
 * set for when the head of the queue can go; there is no timer while nobody waits.
 */

export interface ByteLimiter {
  /** Resolves when `bytes` more may be transferred. */
  take(bytes: number): Promise<void>;
}

const done = Promise.resolve();
/** Bursts are at least this large, so that a slow limit still lets reads of a useful size through. */
const MIN_BURST_BYTES = 1024 * 1024;

/** No limit: no bookkeeping, no timers. */
export const unlimited: ByteLimiter = { take: () => done };

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
}

export interface RateLimiterOptions {
  /** Bytes that may go at once after a pause; default 1/8 s worth, at least 1 MiB. */
  readonly burst?: number;
}

export class RateLimiter implements ByteLimiter {
  readonly bytesPerSecond: number;
  readonly burst: number;
  // Starts empty: over any time from the start, no more than the limit goes.
  private tokens = 0;
  private last = performance.now();
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(bytesPerSecond: number, opts: RateLimiterOptions = {}) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`a rate limit must be a positive number of bytes per second, got ${bytesPerSecond}`);
    this.bytesPerSecond = bytesPerSecond;
    this.burst = opts.burst ?? Math.max(bytesPerSecond / 8, MIN_BURST_BYTES);
  }

  /** Requests waiting. */
  get waiting(): number {
    return this.queue.length;
  }

  take(bytes: number): Promise<void> {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`take() needs a byte count ≥ 0, got ${bytes}`);
    this.refill();
    if (this.queue.length === 0 && this.tokens >= bytes) {
      this.tokens -= bytes;
      return done;
    }
    return new Promise<void>((resolve) => {
      this.queue.push({ bytes, resolve });
      this.schedule();
    });
  }

  private refill(): void {
    const now = performance.now();
    // The bucket holds at least what the head waits for, so a request larger than the
    // burst is served once enough has accrued: it waits in proportion to its size.
    const cap = Math.max(this.burst, this.queue[0]?.bytes ?? 0);
    this.tokens = Math.min(cap, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
  }

  private schedule(): void {
    const head = this.queue[0];
    if (this.timer || !head) return;
    const ms = ((head.bytes - this.tokens) * 1000) / this.bytesPerSecond;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      this.release();
    }, Math.max(1, Math.ceil(ms)));
  }

  private release(): void {
    for (let head = this.queue[0]; head; head = this.queue[0]) {
      // A hair of slack for floating point: the timer was set for exactly enough.
      if (this.tokens + 1e-6 < head.bytes) break;
      this.tokens -= head.bytes;
      this.queue.shift();
      head.resolve();
    }
    this.schedule();
  }
}

/** A limiter for `bytesPerSecond`, or `unlimited` when there is no limit. */
export function rateLimiter(bytesPerSecond: number | undefined): ByteLimiter {
  return bytesPerSecond === undefined || bytesPerSecond === Infinity ? unlimited : new RateLimiter(bytesPerSecond);
}
