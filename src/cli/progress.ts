/**
 * Progress on a terminal: bytes, rate and ETA on stderr. Silent under --json, without a
 * terminal (cron, CI) or when CI is set, so that only the result is printed.
 */
import { SingleBar } from 'cli-progress';
import { bytes } from './format.js';

export interface ProgressSink {
  start(label: string, total: number): void;
  update(done: number, total: number): void;
  stop(): void;
}

const silent: ProgressSink = { start() {}, update() {}, stop() {} };

export function progressSink(json: boolean): ProgressSink {
  if (json || !process.stderr.isTTY || process.env['CI']) return silent;
  let bar: SingleBar | undefined;
  let t0 = 0;
  return {
    start(label, total) {
      bar?.stop();
      t0 = Date.now();
      bar = new SingleBar({
        format: `${label} [{bar}] {percentage}% | {doneB} / {totalB} | {rateB}/s | ETA {eta_formatted}`,
        stream: process.stderr, hideCursor: true, etaBuffer: 20, fps: 5,
      });
      bar.start(total, 0, { doneB: bytes(0), totalB: bytes(total), rateB: bytes(0) });
    },
    update(done, total) {
      const secs = Math.max(0.001, (Date.now() - t0) / 1000);
      bar?.setTotal(total);
      bar?.update(done, { doneB: bytes(done), totalB: bytes(total), rateB: bytes(done / secs) });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/** Several parts in progress at once (disks in parallel) shown as one bar: their sums. */
export interface CombinedProgress {
  /** A part starts (or a new phase of one, under a new key). */
  begin(part: string, total: number): void;
  update(part: string, done: number): void;
}

export function combinedProgress(sink: ProgressSink, label: string): CombinedProgress {
  const parts = new Map<string, { done: number; total: number }>();
  const show = () => {
    let done = 0;
    let total = 0;
    for (const p of parts.values()) { done += p.done; total += p.total; }
    sink.update(done, total);
  };
  return {
    begin(part, total) {
      if (parts.size === 0) sink.start(label, total);
      parts.set(part, { done: 0, total });
      show();
    },
    update(part, done) {
      const p = parts.get(part);
      if (!p) return;
      p.done = done;
      show();
    },
  };
}
