/**
 * What a restore of a disk needs around its target, for every kind of machine: how many
 * bytes a disk's data takes, and a target that stops at its next call once the restore
 * is interrupted or another disk of it failed.
 */
import { checkInterrupted } from '../errors.js';
import type { DiskIndex } from '../repository/disk-index.js';
import type { RestoreTarget } from '../sources/types.js';

/** Bytes of a disk that hold data (what a thin disk needs when only data is written). */
export function dataBytes(index: DiskIndex): number {
  let n = 0;
  for (const i of index.dataChunks()) n += index.chunkLength(i);
  return n;
}

/** The target, failing its next call with "restoring WHAT was interrupted (…)" once `signal` fires. */
export function interruptible(t: RestoreTarget, signal: AbortSignal, what: string): RestoreTarget {
  const check = () => checkInterrupted(signal, `restoring ${what}`);
  return {
    description: t.description, size: t.size, zeroed: t.zeroed, ...(t.sequential ? { sequential: true } : {}),
    write: async (o, d) => { check(); await t.write(o, d); },
    zero: async (o, l) => { check(); await t.zero(o, l); },
    flush: async () => { check(); await t.flush(); },
    readBack: async (o, l, into) => { check(); await t.readBack(o, l, into); },
    close: () => t.close(),
    ...(t.discard ? { discard: () => t.discard!() } : {}),
  };
}
