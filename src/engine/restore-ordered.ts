/**
 * Restores one disk to a target that takes writes in disk order only (a `sequential`
 * target: an HTTP upload of the whole file). The disk is cut into windows of 8 MiB; the
 * chunks of a window are read from their packs (reads grouped and coalesced within the
 * window), decompressed and checked against their digests in the workers, then written
 * in order. Several windows are read and decoded at once; they are written strictly one
 * after the other, so the stream never waits for a window that is still being read
 * unless it has to. Zero chunks are not written: the target fills gaps with zeros.
 *
 * Unlike restoreDisk, a blob used at several places is read once per window that uses
 * it, not once per disk: the price of writing in order with bounded memory.
 */
import { storedBound } from '../repository/blob-codec.js';
import { missingBlobError, readBlobs } from '../repository/blob-read.js';
import { toHex } from '../repository/digest.js';
import type { BlobLocation } from '../repository/index-file.js';
import { type PackRead, coalescePackReads } from '../repository/pack-reads.js';
import type { RestoreDiskRequest } from './restore-disk.js';
import { runWindowed } from './window.js';

/** Plain bytes per window. */
const WINDOW_BYTES = 8 * 1024 * 1024;
/** Blobs of one pack this close together are read with one request, gap included. */
const MAX_GAP = 64 * 1024;

interface WindowBlob {
  readonly digest: string;
  readonly loc: BlobLocation;
  /** Its first chunk in the window, for messages. */
  readonly first: number;
}

interface Window {
  readonly first: number;
  readonly end: number;
  /** Per chunk of the window: its blob, or undefined for a zero chunk. */
  readonly chunks: (WindowBlob | undefined)[];
  readonly reads: PackRead<WindowBlob>[];
  /** Settles once the window before this one is written (or failed). */
  readonly before: Promise<void>;
  /** Settles once this window is written (or failed): the next one writes after it. */
  readonly written: Promise<void>;
  settle(err?: unknown): void;
}

export async function restoreDiskInOrder(req: RestoreDiskRequest): Promise<{ bytesWritten: number }> {
  const { repo, pool, index, target, what } = req;
  const chunkSize = index.chunkSize;
  const perWindow = Math.max(1, Math.floor(WINDOW_BYTES / chunkSize));
  const inputSize = perWindow * storedBound(chunkSize) + perWindow * MAX_GAP;
  let bytesTotal = 0;
  // Every blob is looked up before anything is written: a missing one fails the restore up front.
  for (let i = 0; i < index.count; i++) {
    if (index.isZero(i)) continue;
    bytesTotal += index.chunkLength(i);
    const hex = toHex(index.get(i));
    if (!repo.lookup(hex)) throw missingBlobError(`restoring ${what} failed: the chunk at offset ${i * chunkSize}`, hex);
  }

  let previous: Promise<void> = Promise.resolve();
  function* windows(): Generator<Window> {
    for (let first = 0; first < index.count; first += perWindow) {
      const w = plan(first, Math.min(index.count, first + perWindow), previous);
      previous = w.written;
      yield w;
    }
  }

  function plan(first: number, end: number, before: Promise<void>): Window {
    const byDigest = new Map<string, WindowBlob>();
    const chunks: (WindowBlob | undefined)[] = [];
    for (let i = first; i < end; i++) {
      if (index.isZero(i)) { chunks.push(undefined); continue; }
      const hex = toHex(index.get(i));
      let b = byDigest.get(hex);
      if (!b) {
        // Looked up above: planning runs inside the window loop's iterator and must not throw.
        b = { digest: hex, loc: repo.lookup(hex)!, first: i };
        byDigest.set(hex, b);
      }
      chunks.push(b);
    }
    const reads = coalescePackReads([...byDigest.values()], MAX_GAP);
    let settle!: (err?: unknown) => void;
    const written = new Promise<void>((resolve, reject) => { settle = (err) => (err === undefined ? resolve() : reject(err)); });
    written.catch(() => {});
    return { first, end, chunks, reads, before, written, settle };
  }

  const inFlight = Math.max(2, Math.min(pool.size * 2, 8));
  const slots = await pool.createSlots(inFlight, { input: inputSize, output: perWindow * chunkSize, digests: 0 });
  let bytesDone = 0;
  let bytesWritten = 0;

  try {
    await runWindowed(windows(), inFlight, async (w) => {
      const slot = await slots.acquire();
      try {
        const got = await readBlobs(repo.backend, pool, slot, w.reads, {
          findData: target.zeroed, describe: (b) => `restoring ${what} failed: the chunk at offset ${b.first * chunkSize}`,
        });
        if (got.corrupt) throw got.corrupt.error;
        // got.plain and got.runs follow the reads' blobs in order.
        const decoded = new Map<WindowBlob, { plain: Buffer; runs: number[] }>();
        w.reads.flatMap((r) => r.blobs).forEach((b, i) => decoded.set(b, { plain: got.plain[i]!, runs: got.runs?.[i] ?? [0, b.loc.rawLength] }));
        // Window k writes once window k-1 is written; a failure before it fails it too.
        await w.before;
        for (let k = 0; k < w.chunks.length; k++) {
          const b = w.chunks[k];
          if (!b) {
            if (!target.zeroed) await target.zero((w.first + k) * chunkSize, index.chunkLength(w.first + k));
            continue;
          }
          const { plain: data, runs: parts } = decoded.get(b)!;
          for (let p = 0; p < parts.length; p += 2) {
            await target.write((w.first + k) * chunkSize + parts[p]!, data.subarray(parts[p]!, parts[p + 1]!));
            bytesWritten += parts[p + 1]! - parts[p]!;
          }
          bytesDone += b.loc.rawLength;
        }
        w.settle();
      } catch (err) {
        w.settle(err);
        throw err;
      } finally {
        slots.release(slot);
      }
      req.onProgress?.({ bytesDone, bytesTotal });
    });
  } finally {
    await pool.disposeSlots(slots);
  }
  await target.flush();
  return { bytesWritten };
}
