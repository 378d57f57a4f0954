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

/** Sorted, non-overlapping extents; touching or overlapping ones are merged, empty ones dropped. */
export function mergeExtents(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).sort((a, b) => a.start - b.start);
  const out: { start: number; length: number }[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && e.start <= last.start + last.length) last.length = Math.max(last.length, e.start + e.length - last.start);
    else out.push({ start: e.start, length: e.length });
  }
  return out;
}

/** Sorted, merged chunk ranges covering every byte of the extents. */
export function chunkRanges(extents: readonly Extent[], chunkSize: number): ChunkRange[] {
  // Merged in chunk-number space: an extent becomes the chunks it touches.
  const inChunks = extents.filter((e) => e.length > 0).map((e) => {
    const first = Math.floor(e.start / chunkSize);
    return { start: first, length: Math.ceil((e.start + e.length) / chunkSize) - first };
  });
  return mergeExtents(inChunks).map((e) => ({ first: e.start, end: e.start + e.length }));
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
