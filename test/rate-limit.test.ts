import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RateLimiter, rateLimiter, unlimited } from '../src/engine/rate-limit.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const activeTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('RateLimiter', () => {
  it('holds concurrent streams to the limit together, each getting a fair share', async () => {
    const limit = 20 * MiB;
    const limiter = new RateLimiter(limit);
    const start = performance.now();
    const got = [0, 0, 0, 0];
    await Promise.all(got.map(async (_, i) => {
      while (performance.now() - start < 1500) {
        await limiter.take(MiB);
        got[i] = (got[i] ?? 0) + MiB;
      }
    }));
    const elapsed = (performance.now() - start) / 1000;
    const total = got.reduce((a, b) => a + b, 0);
    const rate = total / elapsed;
    assert.ok(Math.abs(rate - limit) / limit < 0.1, `measured ${(rate / MiB).toFixed(2)} MiB/s for a limit of 20 MiB/s`);
    // First come, first served: the streams take turns, none gets more than a piece ahead.
    assert.ok(Math.max(...got) - Math.min(...got) <= MiB, `shares ${got.map((g) => g / MiB).join(', ')} MiB`);
    assert.equal(limiter.waiting, 0);
  });

  it('serves waiters in the order they came, a small request not overtaking a large one', async () => {
    const limiter = new RateLimiter(16 * MiB, { burst: MiB });
    const order: number[] = [];
    const sizes = [3 * MiB, 1024, 2 * MiB, 1, 0, MiB];
    await Promise.all(sizes.map((n, i) => limiter.take(n).then(() => order.push(i))));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  });

  it('a request larger than the burst waits in proportion to its size', async () => {
    const limiter = new RateLimiter(8 * MiB, { burst: MiB });
    const start = performance.now();
    await limiter.take(4 * MiB);
    const ms = performance.now() - start;
    assert.ok(ms >= 490 && ms < 1000, `4 MiB at 8 MiB/s took ${ms.toFixed(0)} ms`);
    // And its size was paid for: the next MiB waits its own 125 ms.
    const next = performance.now();
    await limiter.take(MiB);
    const ms2 = performance.now() - next;
    assert.ok(ms2 >= 115 && ms2 < 500, `1 MiB after it took ${ms2.toFixed(0)} ms`);
  });

  it('after a pause, up to a burst goes at once, without a timer', async () => {
    const limiter = new RateLimiter(MiB, { burst: 64 * 1024 });
    await sleep(100);
    const p = limiter.take(64 * 1024);
    assert.equal(limiter.waiting, 0);
    await p;
    // The bucket is empty again and holds no more than the burst after a long pause.
    await sleep(200);
    const late = limiter.take(64 * 1024 + 1);
    assert.equal(limiter.waiting, 1);
    await late;
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

  it('unlimited resolves at once and is what no limit gives', async () => {
    assert.equal(rateLimiter(undefined), unlimited);
    assert.ok(rateLimiter(MiB) instanceof RateLimiter);
    const start = performance.now();
    for (let i = 0; i < 10_000; i++) await unlimited.take(100 * MiB);
    assert.ok(performance.now() - start < 500);
  });
});
