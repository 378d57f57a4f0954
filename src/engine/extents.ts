/** Extents (byte ranges) and the chunk ranges that cover them. */
import { InputError } from '../errors.js';
import type { Extent } from '../sources/types.js';

/** Half-open range of chunk numbers [first, end). */
export interface ChunkRange {
  readonly first: number;
  readonly end: number;
}

/** Checks that extents are well formed and inside the disk. `what` names their origin for messages. */
export function checkExtents(extents: readonly Extent[], size: number, what: string): void {
  extents.forEach((e, i) => {
    if (!Number.isSafeInteger(e.start) || !Number.isSafeInteger(e.length) || e.start < 0 || e.length < 0) {
      throw new InputError(`${what}: extent ${i} {start: ${e.start}, length: ${e.length}} is invalid: start and length must be non-negative integers`);
    }
    if (e.start + e.length > size) {
      throw new InputError(`${what}: extent ${i} {start: ${e.start}, length: ${e.length}} ends at ${e.start + e.length}, past the disk's end (${size} bytes)`);
    }
  });
}

/** Sorted, merged chunk ranges covering every byte of the extents. */
export function chunkRanges(extents: readonly Extent[], chunkSize: number): ChunkRange[] {
  const ranges = extents.filter((e) => e.length > 0)
    .map((e) => ({ first: Math.floor(e.start / chunkSize), end: Math.ceil((e.start + e.length) / chunkSize) }))
    .sort((a, b) => a.first - b.first);
  const merged: { first: number; end: number }[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r.first <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}

/** Splits chunk ranges into pieces of at most `max` chunks. */
export function* segments(ranges: readonly ChunkRange[], max: number): Generator<ChunkRange> {
  for (const r of ranges) {
    for (let f = r.first; f < r.end; f += max) yield { first: f, end: Math.min(r.end, f + max) };
  }
}

/** Parses the JSON of a changed-areas file: [{"start": …, "length": …}, …]. */
export function parseExtentsJson(text: string, what: string): Extent[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(json)) throw new InputError(`${what} must be a JSON array of {"start": N, "length": N}`);
  return json.map((e: unknown, i) => {
    const o = e as { start?: unknown; length?: unknown } | null;
    if (typeof o !== 'object' || o === null || typeof o.start !== 'number' || typeof o.length !== 'number') {
      throw new InputError(`${what}: entry ${i} must be an object {"start": N, "length": N}`);
    }
    return { start: o.start, length: o.length };
  });
}
