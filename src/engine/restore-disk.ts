/**
 * Restores one disk from its index to a DiskTarget. Blobs are read pack by pack in
 * stored order (coalesced into large reads), decompressed and checked against their
 * digest in the workers, then written at every offset that uses them. Any mismatch
 * fails the restore: it never writes data it could not verify. On a target that starts
 * zeroed, only pages that hold data are written, so the image stays as sparse as the source.
 */
import { missingBlobError, readBlobs } from '../repository/blob-read.js';
import type { ChunkPool } from '../repository/chunk-pool.js';
import { type DiskIndex, forEachPiece } from '../repository/disk-index.js';
import { toHex } from '../repository/digest.js';
import type { BlobLocation } from '../repository/index-file.js';
import { coalescePackReads } from '../repository/pack-reads.js';
import type { Repository } from '../repository/repository.js';
import type { DiskTarget } from '../sources/types.js';
import type { Progress } from './backup-disk.js';
import { Mutex, runWindowed } from './window.js';

/** Stored bytes per read, and plain bytes per read: a read is bounded by both. */
const READ_BYTES = 8 * 1024 * 1024;
/** Blobs closer than this in one pack are read together, gap included. */
const MAX_GAP = 256 * 1024;

interface Wanted {
  readonly digest: string;
  readonly loc: BlobLocation;
  readonly positions: number[];
}

export interface RestoreDiskRequest {
  readonly repo: Repository;
  readonly pool: ChunkPool;
  /** Loaded, or opened lazily (openDiskIndex): restoreDisk reads it one piece at a time. */
  readonly index: DiskIndex;
  readonly target: DiskTarget;
  /** Names the disk in messages ("set web01 generation 3 disk sda"). */
  readonly what: string;
  readonly onProgress?: (p: Progress) => void;
}

export async function restoreDisk(req: RestoreDiskRequest): Promise<{ bytesWritten: number }> {
  const { repo, pool, index, target, what } = req;
  const chunkSize = index.chunkSize;
  const byDigest = new Map<string, Wanted>();
  let bytesTotal = 0;
  // Piece by piece: what the restore holds follows the chunks with data, not the disk's size.
  await forEachPiece(repo, index, `restoring ${what}`, (p, first) => {
    for (let i = first; i < first + index.pieceLength(p); i++) {
      if (index.isZero(i)) continue;
      bytesTotal += index.chunkLength(i);
      const hex = toHex(index.get(i));
      let w = byDigest.get(hex);
      if (!w) {
        const loc = repo.lookup(hex);
        if (!loc) throw missingBlobError(`restoring ${what} failed: the chunk at offset ${i * chunkSize}`, hex);
        w = { digest: hex, loc, positions: [] };
        byDigest.set(hex, w);
      }
      w.positions.push(i);
    }
  });

  // Bounded by READ_BYTES stored and plain.
  const reads = coalescePackReads([...byDigest.values()], MAX_GAP, READ_BYTES);
  const maxLength = reads.reduce((m, r) => Math.max(m, r.length), 0);
  const maxRaw = reads.reduce((m, r) => Math.max(m, r.rawLength), 0);
  const window = pool.size * 2;
  const slots = await pool.createSlots(Math.min(window, reads.length) || 1, { input: maxLength, output: maxRaw, digests: 0 });
  let bytesDone = 0;
  let bytesWritten = 0;
  const writer = new Mutex();

  try {
    await runWindowed(reads, window, async (r) => {
      const slot = await slots.acquire();
      try {
        const got = await readBlobs(repo.backend, pool, slot, [r], {
          findData: target.zeroed, describe: (b) => `restoring ${what} failed: the chunk at offset ${b.positions[0]! * chunkSize}`,
        });
        if (got.corrupt) throw got.corrupt.error;
        // One writer at a time: parallel writes to one file contend on its inode lock and run slower.
        const unlock = await writer.lock();
        try {
          const n = await writeBatch(target, chunkSize, r.blobs, got.plain, got.runs);
          bytesWritten += n.written;
          bytesDone += n.done;
        } finally {
          unlock();
        }
      } finally {
        slots.release(slot);
      }
      req.onProgress?.({ bytesDone, bytesTotal });
    });
  } finally {
    await pool.disposeSlots(slots);
  }

  if (!target.zeroed) {
    await forEachPiece(repo, index, `restoring ${what}`, async (p, first) => {
      for (let i = first; i < first + index.pieceLength(p); i++) if (index.isZero(i)) await target.zero(i * chunkSize, index.chunkLength(i));
    }, async (p, first) => {
      for (let i = first; i < first + index.pieceLength(p); i++) await target.zero(i * chunkSize, index.chunkLength(i));
    });
  }
  await target.flush();
  return { bytesWritten };
}

/**
 * Writes verified blobs (`plain[i]` is blob i) at every offset that uses them; with
 * `runs`, only the parts that hold data.
 */
async function writeBatch(target: DiskTarget, chunkSize: number, blobs: readonly Wanted[], plain: readonly Buffer[], runs: number[][] | undefined): Promise<{ written: number; done: number }> {
  let written = 0;
  let done = 0;
  for (let i = 0; i < blobs.length; i++) {
    const b = blobs[i]!;
    const data = plain[i]!;
    const parts = runs?.[i] ?? [0, data.length];
    for (const pos of b.positions) {
      for (let k = 0; k < parts.length; k += 2) {
        await target.write(pos * chunkSize + parts[k]!, data.subarray(parts[k]!, parts[k + 1]!));
        written += parts[k + 1]! - parts[k]!;
      }
      done += data.length;
    }
  }
  return { written, done };
}
