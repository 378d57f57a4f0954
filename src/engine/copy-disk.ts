/**
 * Copies one disk of a generation from one repository into another: returns the disk's
 * index in the destination's ids, every chunk it names stored there (or on its way, in
 * the destination's writer). The caller stores the index and commits the generation.
 *
 * Which chunks are read from the source:
 *
 *   same ids      (both plaintext, or one master key): only the chunks the destination
 *                 lacks; the others are not even read.
 *   other ids     the destination's id of a chunk is a keyed hash of its plain bytes, so a
 *                 chunk is read unless the same position of the previous generation both
 *                 repositories hold (`base`) has the same source id: then its destination
 *                 id is the one there. A copy of the next generation reads what changed.
 *
 * A chunk read is read as restore reads it (blob-read.ts: grouped by pack, opened,
 * decompressed and checked against its id in the source's workers), so nothing unchecked
 * is ever stored. Then either its stored bytes go to the destination as they are (same
 * ids and data key: they open there too), or the destination's workers name and encode
 * its plain bytes with the destination's codec.
 */
import { VmbkpError } from '../errors.js';
import { missingBlobError, readBlobs } from '../repository/blob-read.js';
import { storedBound } from '../repository/blob-codec.js';
import type { ChunkPool, Slot, SlotSet } from '../repository/chunk-pool.js';
import type { BlobCompatibility } from '../repository/compatibility.js';
import { DIGEST_LENGTH, ZERO_DIGEST, toHex } from '../repository/digest.js';
import { DiskIndex } from '../repository/disk-index.js';
import type { BlobLocation } from '../repository/index-file.js';
import { BlobType } from '../repository/pack.js';
import { type PackRead, coalescePackReads } from '../repository/pack-reads.js';
import type { BlobWriter } from '../repository/pack-writer.js';
import type { Repository } from '../repository/repository.js';
import type { Progress } from './backup-disk.js';
import { runWindowed } from './window.js';

/** Stored bytes per read, and plain bytes per read (as restore). */
const READ_BYTES = 8 * 1024 * 1024;
/** Blobs closer than this in one pack are read together, gap included. */
const MAX_GAP = 256 * 1024;

/** What a copy did, summed over disks and generations. */
export interface CopyCounters {
  /** Distinct chunks read from the source (per disk). */
  chunksRead: number;
  /** Stored bytes read from the source's packs for them (gaps between close blobs included). */
  bytesRead: number;
  /** Blobs written to the destination (chunks and index pieces). */
  chunksSent: number;
  /** Their stored bytes. */
  bytesSent: number;
  /** Chunk positions the destination already held, so nothing was sent for them. */
  chunksPresent: number;
}

export function zeroCounters(): CopyCounters {
  return { chunksRead: 0, bytesRead: 0, chunksSent: 0, bytesSent: 0, chunksPresent: 0 };
}

export function addCounters(into: CopyCounters, c: CopyCounters): void {
  into.chunksRead += c.chunksRead;
  into.bytesRead += c.bytesRead;
  into.chunksSent += c.chunksSent;
  into.bytesSent += c.bytesSent;
  into.chunksPresent += c.chunksPresent;
}

export interface CopyDiskRequest {
  readonly from: Repository;
  readonly to: Repository;
  /** The source's workers: they open and check what is read. */
  readonly fromPool: ChunkPool;
  /** The destination's workers, which name and encode chunks; absent when stored bytes are copied as they are (`compat.sameStored`). */
  readonly toPool: ChunkPool | undefined;
  /** The destination's writer for this generation. */
  readonly writer: BlobWriter;
  readonly compat: BlobCompatibility;
  /** The disk's index in the source. */
  readonly index: DiskIndex;
  /** The same disk in the previous generation both repositories hold (same size): maps source ids to destination ids without reading. */
  readonly base?: { readonly from: DiskIndex; readonly to: DiskIndex } | undefined;
  /** Names the disk in messages ("copying set web01 generation 3 disk sda"). */
  readonly what: string;
  readonly onProgress?: (p: Progress) => void;
}

interface Wanted {
  readonly digest: string;
  readonly loc: BlobLocation;
  readonly positions: number[];
}

export async function copyDisk(req: CopyDiskRequest): Promise<{ index: DiskIndex; counters: CopyCounters }> {
  const { from, compat, index, writer, what } = req;
  const chunkSize = index.chunkSize;
  const out = DiskIndex.empty(index.size, chunkSize);
  const counters = zeroCounters();
  const base = req.base && req.base.from.count === index.count && req.base.to.count === index.count ? req.base : undefined;

  // Decide per position: zero, known to the destination without reading, or to be read.
  const wanted = new Map<string, Wanted>();
  for (let i = 0; i < index.count; i++) {
    if (index.isZero(i)) continue;
    const id = index.get(i);
    const hex = toHex(id);
    const w = wanted.get(hex);
    if (w) { w.positions.push(i); continue; }
    if (compat.sameIds) {
      if (writer.has(hex)) { out.set(i, id); counters.chunksPresent++; continue; }
    } else if (base && !base.to.isZero(i) && base.from.get(i).equals(id)) {
      const known = base.to.get(i);
      if (writer.has(toHex(known))) { out.set(i, known); counters.chunksPresent++; continue; }
    }
    const loc = from.lookup(hex);
    if (!loc) throw missingBlobError(`${what} failed: the chunk at offset ${i * chunkSize}`, hex);
    wanted.set(hex, { digest: hex, loc, positions: [i] });
  }

  const reads = coalescePackReads([...wanted.values()], MAX_GAP, READ_BYTES);
  wanted.clear();
  if (reads.length > 0) await readAndSend(req, reads, out, counters);

  // Every chunk that holds data has its destination id: a hole here would restore as zeros.
  for (let i = 0; i < index.count; i++) {
    if (!index.isZero(i) && out.isZero(i)) throw new VmbkpError('INTERNAL', `${what} failed: the chunk at offset ${i * chunkSize} got no id in the destination`);
  }
  return { index: out, counters };
}

async function readAndSend(req: CopyDiskRequest, reads: PackRead<Wanted>[], out: DiskIndex, counters: CopyCounters): Promise<void> {
  const { from, fromPool, toPool, writer, what } = req;
  const chunkSize = out.chunkSize;
  const bytesTotal = reads.reduce((n, r) => n + r.rawLength, 0);
  let bytesDone = 0;
  const maxLength = reads.reduce((m, r) => Math.max(m, r.length), 0);
  const maxRaw = reads.reduce((m, r) => Math.max(m, r.rawLength), 0);
  const maxBlobs = reads.reduce((m, r) => Math.max(m, r.blobs.length), 0);
  const window = fromPool.size * 2;
  const count = Math.min(window, reads.length);
  const fromSlots = await fromPool.createSlots(count, { input: maxLength, output: maxRaw, digests: 0 });
  let toSlots: SlotSet | undefined;
  req.onProgress?.({ bytesDone, bytesTotal });
  try {
    if (toPool) toSlots = await toPool.createSlots(count, { input: maxBlobs * chunkSize, output: maxBlobs * storedBound(chunkSize), digests: maxBlobs * DIGEST_LENGTH });
    const place = (b: Wanted, id: Uint8Array, added: number): void => {
      for (const p of b.positions) out.set(p, id);
      if (added > 0) { counters.chunksSent++; counters.bytesSent += added; } else counters.chunksPresent += b.positions.length;
    };
    await runWindowed(reads, count, async (r) => {
      const slot = await fromSlots.acquire();
      try {
        const got = await readBlobs(from.backend, fromPool, slot, [r], {
          findData: false, describe: (b) => `${what} failed: the chunk at offset ${b.positions[0]! * chunkSize}`,
        });
        if (got.corrupt) throw got.corrupt.error;
        counters.bytesRead += r.length;
        counters.chunksRead += r.blobs.length;
        if (toSlots && toPool) {
          await encodeAndSend(toPool, toSlots, writer, chunkSize, r.blobs, got.plain, place);
        } else {
          // Same ids and data key: the verified stored bytes open in the destination as they are.
          for (const b of r.blobs) {
            const at = b.loc.offset - r.offset;
            const id = Buffer.from(b.digest, 'hex');
            const { added, ready } = writer.addBlob(id, b.loc.type, { compression: b.loc.compression, data: slot.input.subarray(at, at + b.loc.length) }, b.loc.rawLength);
            place(b, id, added);
            await ready;
          }
        }
      } finally {
        fromSlots.release(slot);
      }
      bytesDone += r.rawLength;
      req.onProgress?.({ bytesDone, bytesTotal });
    });
  } finally {
    await fromPool.disposeSlots(fromSlots);
    if (toSlots && toPool) await toPool.disposeSlots(toSlots);
  }
}

/**
 * Names and encodes verified plain chunks with the destination's codec, in its workers:
 * they are laid out one per chunk-size stride, the disk's short last chunk (at most one per
 * disk) at the end, as a backup segment is, then hashed and the ones the destination lacks
 * encoded.
 */
async function encodeAndSend(pool: ChunkPool, slots: SlotSet, writer: BlobWriter, chunkSize: number, blobs: readonly Wanted[], plain: readonly Buffer[],
  place: (b: Wanted, id: Uint8Array, added: number) => void): Promise<void> {
  const order = blobs.map((_, k) => k).sort((a, b) => Number(plain[a]!.length < chunkSize) - Number(plain[b]!.length < chunkSize));
  const slot: Slot = await slots.acquire();
  try {
    let length = 0;
    order.forEach((k, j) => {
      plain[k]!.copy(slot.input, j * chunkSize);
      length = j * chunkSize + plain[k]!.length;
    });
    await pool.hash(slot, length, chunkSize);
    const send: number[] = [];
    order.forEach((k, j) => {
      const id = slot.digests.subarray(j * DIGEST_LENGTH, (j + 1) * DIGEST_LENGTH);
      if (ZERO_DIGEST.equals(id)) throw new VmbkpError('INTERNAL', 'a chunk that holds data was named as a zero chunk');
      if (writer.has(toHex(id))) place(blobs[k]!, Buffer.from(id), 0);
      else send.push(j);
    });
    for (const e of await pool.encode(slot, length, chunkSize, send)) {
      const b = blobs[order[e.chunk]!]!;
      const id = Buffer.from(slot.digests.subarray(e.chunk * DIGEST_LENGTH, (e.chunk + 1) * DIGEST_LENGTH));
      const data = (e.inOutput ? slot.output : slot.input).subarray(e.offset, e.offset + e.length);
      const { added, ready } = writer.addBlob(id, BlobType.Chunk, { compression: e.compression, data }, plain[order[e.chunk]!]!.length);
      place(b, id, added);
      await ready;
    }
  } finally {
    slots.release(slot);
  }
}
