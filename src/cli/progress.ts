/**
 * Progress on a terminal: bytes, rate and ETA on stderr (or counts: packs, generations).
 * Silent under --json or --quiet, without a terminal (cron, CI) or when CI is set, so that
 * only the result is printed.
 */
import { createRequire } from 'node:module';
import type { SingleBar } from 'cli-progress';
import { bytes } from './format.js';
import { getVerbosity } from './log.js';

export interface ProgressSink {
  /** A bar over `total` bytes, or over `total` things named by `unit` ("packs"). */
  start(label: string, total: number, unit?: string): void;
  update(done: number, total: number): void;
  stop(): void;
}

const silent: ProgressSink = { start() {}, update() {}, stop() {} };

/** cli-progress, loaded when a bar is first drawn: runs without a terminal never need it. */
function barClass(): typeof SingleBar {
  const load = createRequire(import.meta.url) as (id: 'cli-progress') => typeof import('cli-progress');
  return load('cli-progress').SingleBar;
}

export function progressSink(json: boolean): ProgressSink {
  if (json || getVerbosity() === 'quiet' || !process.stderr.isTTY || process.env['CI']) return silent;
  let bar: SingleBar | undefined;
  let t0 = 0;
  let counting = false;
  return {
    start(label, total, unit) {
      bar?.stop();
      t0 = Date.now();
      counting = unit !== undefined;
      const Bar = barClass();
      bar = new Bar({
        format: counting ? `${label} [{bar}] {percentage}% | {value} / {total} ${unit} | ETA {eta_formatted}`
          : `${label} [{bar}] {percentage}% | {doneB} / {totalB} | {rateB}/s | ETA {eta_formatted}`,
        stream: process.stderr, hideCursor: true, etaBuffer: 20, fps: 5,
      });
      bar.start(total, 0, { doneB: bytes(0), totalB: bytes(total), rateB: bytes(0) });
    },
    update(done, total) {
      const secs = Math.max(0.001, (Date.now() - t0) / 1000);
      bar?.setTotal(total);
      bar?.update(done, counting ? {} : { doneB: bytes(done), totalB: bytes(total), rateB: bytes(done / secs) });
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

/** A step of a long maintenance command, counted in things (verify, gc, prune report these). */
export interface CountStep {
  readonly step: string;
  readonly unit: string;
  readonly done: number;
  readonly total: number;
}

/** Shows count progress: a new bar each time the step changes; steps with nothing to count show none. */
export function countProgress(sink: ProgressSink, command: string): (p: CountStep) => void {
  let current: string | undefined;
  return (p) => {
    if (p.total === 0) return;
    if (p.step !== current) {
      current = p.step;
      sink.start(`${command}: ${p.step}`, p.total, p.unit);
    }
    sink.update(p.done, p.total);
  };
}
