/**
 * Grouping blobs into pack reads: blobs stored close together in one pack are read with
 * one request, the gap between them included, which costs less than a request each.
 */
import type { BlobLocation } from './index-file.js';

export interface PackRead<B> {
  readonly pack: string;
  readonly offset: number;
  length: number;
  /** Plain bytes of its blobs. */
  rawLength: number;
  /** Its blobs, in stored order. */
  readonly blobs: B[];
}

/**
 * Sorts `blobs` (in place) by pack and offset and groups those at most `maxGap` apart into
 * reads of at most `maxBytes` stored bytes and `maxBytes` plain bytes.
 */
export function coalescePackReads<B extends { readonly loc: BlobLocation }>(blobs: B[], maxGap: number, maxBytes = Infinity): PackRead<B>[] {
  blobs.sort((a, b) => (a.loc.pack < b.loc.pack ? -1 : a.loc.pack > b.loc.pack ? 1 : a.loc.offset - b.loc.offset));
  const reads: PackRead<B>[] = [];
  for (const b of blobs) {
    const last = reads[reads.length - 1];
    const end = b.loc.offset + b.loc.length;
    if (last && last.pack === b.loc.pack && b.loc.offset - (last.offset + last.length) <= maxGap
      && end - last.offset <= maxBytes && last.rawLength + b.loc.rawLength <= maxBytes) {
      last.length = end - last.offset;
      last.rawLength += b.loc.rawLength;
      last.blobs.push(b);
    } else {
      reads.push({ pack: b.loc.pack, offset: b.loc.offset, length: b.loc.length, rawLength: b.loc.rawLength, blobs: [b] });
    }
  }
  return reads;
}
