import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { type TestContext, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RateLimiter, rateLimiter, unlimited } from '../src/engine/rate-limit.js';

const MiB = 1024 * 1024;
const activeTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
/** Lets every promise continuation that can run, run (setImmediate is left real). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Virtual time for the limiter: `performance.now()` and `setTimeout` are replaced for the
 * test, and time moves only when the test says so, one millisecond at a time, with every
 * timer due in that millisecond run at its due time. Assertions are then about how many
 * bytes went by which virtual instant: exact, whatever the load on the machine.
 */
class VirtualClock {
  now = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  constructor(t: TestContext) {
    t.mock.method(performance, 'now', () => this.now);
    const fake = (fn: () => void, ms = 0) => {
      const timer = { at: this.now + Math.max(1, ms), seq: this.seq++, fn };
      this.timers.push(timer);
      return timer;
    };
    t.mock.method(globalThis, 'setTimeout', fake as unknown as typeof setTimeout);
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time on by `ms`, settling promises after every millisecond; `each` runs after each one. */
  async advance(ms: number, each?: () => void): Promise<void> {
    for (let i = 0; i < ms; i++) {
      this.now += 1;
      for (;;) {
        const due = this.timers.filter((x) => x.at <= this.now).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
        if (!due) break;
        this.timers.splice(this.timers.indexOf(due), 1);
        due.fn();
      }
      await settle();
      each?.();
    }
  }
}

/** Tracks whether a promise has settled. */
function watch(p: Promise<void>): { readonly done: boolean } {
  const state = { done: false };
  void p.then(() => { state.done = true; });
  return state;
}

describe('RateLimiter', () => {
  it('holds concurrent streams to the limit together, each getting a fair share', async (t) => {
    const clock = new VirtualClock(t);
    const limit = 20 * MiB;
    const limiter = new RateLimiter(limit);
    const got = [0, 0, 0, 0];
    let running = true;
    const streams = Promise.all(got.map(async (_, i) => {
      while (running) {
        await limiter.take(MiB);
        got[i] = (got[i] ?? 0) + MiB;
      }
    }));
    const total = () => got.reduce((a, b) => a + b, 0);
    // The bucket starts empty: at no instant has more gone than the limit allows since the start.
    await clock.advance(1500, () => {
      assert.ok(total() <= (limit * clock.now) / 1000 + 1, `${total() / MiB} MiB by ${clock.now} ms`);
    });
    // And the limiter keeps up with it: at most the one request being waited for is missing.
    assert.ok(total() >= (limit * 1.5) - MiB, `only ${total() / MiB} MiB in 1.5 s at 20 MiB/s`);
    // First come, first served: the streams take turns, none gets more than a piece ahead.
    assert.ok(Math.max(...got) - Math.min(...got) <= MiB, `shares ${got.map((g) => g / MiB).join(', ')} MiB`);
    running = false;
    await clock.advance(200);
    await streams;
    assert.equal(limiter.waiting, 0);
  });

  it('serves waiters in the order they came, a small request not overtaking a large one', async (t) => {
    const clock = new VirtualClock(t);
    const limiter = new RateLimiter(16 * MiB, { burst: MiB });
    const order: number[] = [];
    const sizes = [3 * MiB, 1024, 2 * MiB, 1, 0, MiB];
    const all = Promise.all(sizes.map((n, i) => limiter.take(n).then(() => order.push(i))));
    await clock.advance(1000);
    await all;
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  });

  it('a request larger than the burst waits in proportion to its size', async (t) => {
    const clock = new VirtualClock(t);
    const limiter = new RateLimiter(8 * MiB, { burst: MiB });
    // 4 MiB at 8 MiB/s: 500 ms.
    const big = watch(limiter.take(4 * MiB));
    await clock.advance(499);
    assert.equal(big.done, false, 'done before 500 ms');
    await clock.advance(2);
    assert.equal(big.done, true, 'not done by 501 ms');
    // And its size was paid for: the next MiB waits its own 125 ms.
    const next = watch(limiter.take(MiB));
    await clock.advance(123);
    assert.equal(next.done, false, 'the next MiB came early');
    await clock.advance(3);
    assert.equal(next.done, true, 'the next MiB did not come after 125 ms');
  });

  it('after a pause, up to a burst goes at once, without a timer', async (t) => {
    const clock = new VirtualClock(t);
    const limiter = new RateLimiter(MiB, { burst: 64 * 1024 });
    await clock.advance(100);
    const p = watch(limiter.take(64 * 1024));
    assert.equal(limiter.waiting, 0);
    assert.equal(clock.pendingTimers, 0);
    await settle();
    assert.equal(p.done, true);
    // The bucket is empty again and holds no more than the burst after a long pause.
    await clock.advance(200);
    const late = watch(limiter.take(64 * 1024 + 1));
    assert.equal(limiter.waiting, 1);
    await clock.advance(1);
    assert.equal(late.done, true, 'one byte at 1 MiB/s takes under a millisecond');
    assert.equal(clock.pendingTimers, 0);
  });

  it('leaves no timer behind when nobody waits', async () => {
    const before = activeTimers();
    const limiter = new RateLimiter(32 * MiB);
    await Promise.all([1, 2, 3].map(() => limiter.take(2 * MiB)));
    assert.equal(limiter.waiting, 0);
    assert.equal(activeTimers(), before);
  });

  it('a process using it exits when the work is done', async () => {
    const module = fileURLToPath(new URL('../src/engine/rate-limit.js', import.meta.url));
    const script = `
      const { RateLimiter } = await import(${JSON.stringify(module)});
      const limiter = new RateLimiter(40 * 1024 * 1024);
      await Promise.all([0, 1, 2].map(async () => { for (let i = 0; i < 4; i++) await limiter.take(1024 * 1024); }));
      console.log('done', limiter.waiting);
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    assert.equal(stdout.trim(), 'done 0');
  });

  it('refuses nonsense', () => {
    assert.throws(() => new RateLimiter(0), RangeError);
    assert.throws(() => new RateLimiter(Number.NaN), RangeError);
    assert.throws(() => new RateLimiter(MiB).take(-1), RangeError);
  });

  it('unlimited resolves at once, with no timer, and is what no limit gives', async (t) => {
    assert.equal(rateLimiter(undefined), unlimited);
    assert.ok(rateLimiter(MiB) instanceof RateLimiter);
    const clock = new VirtualClock(t);
    const taken = Array.from({ length: 1000 }, () => watch(unlimited.take(100 * MiB)));
    await settle(); // no time passes
    assert.ok(taken.every((x) => x.done));
    assert.equal(clock.pendingTimers, 0);
  });
});
