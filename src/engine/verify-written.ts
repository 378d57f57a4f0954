/**
 * Checks a restored disk against the generation it came from: reads the disk back,
 * hashes every chunk in the workers and compares it with the index (a zero chunk must
 * read as zeros). What a target stored is then known to be what the backup holds, not
 * only what was sent.
 */
import { IoError } from '../errors.js';
import type { DiskIndex } from '../repository/disk-index.js';
import { DIGEST_LENGTH, toHex } from '../repository/digest.js';
import type { Progress } from './backup-disk.js';
import type { ChunkPool } from '../repository/chunk-pool.js';
import { runWindowed } from './window.js';

/** Bytes read back per request. */
const SEGMENT_BYTES = 8 * 1024 * 1024;

export interface VerifyWrittenRequest {
  readonly pool: ChunkPool;
  readonly index: DiskIndex;
  /** Reads the written disk. */
  readonly read: (offset: number, length: number, into: Buffer) => Promise<void>;
  /** Names the disk in messages ("disk 2000 of VM web01-restored"). */
  readonly what: string;
  readonly onProgress?: (p: Progress) => void;
}

export async function verifyWritten(req: VerifyWrittenRequest): Promise<void> {
  const { pool, index, what } = req;
  const chunkSize = index.chunkSize;
  const perSegment = Math.max(1, Math.floor(SEGMENT_BYTES / chunkSize));
  const segment = perSegment * chunkSize;
  const inFlight = Math.max(2, Math.min(pool.size * 2, 8));
  const slots = await pool.createSlots(inFlight, { input: segment, output: 0, digests: perSegment * DIGEST_LENGTH });
  const starts: number[] = [];
  for (let c = 0; c < index.count; c += perSegment) starts.push(c);
  let bytesDone = 0;
  try {
    await runWindowed(starts, inFlight, async (first) => {
      const count = Math.min(perSegment, index.count - first);
      const offset = first * chunkSize;
      const length = Math.min(segment, index.size - offset);
      const slot = await slots.acquire();
      try {
        await req.read(offset, length, slot.input.subarray(0, length));
        await pool.hash(slot, length, chunkSize);
        for (let k = 0; k < count; k++) {
          const got = slot.digests.subarray(k * DIGEST_LENGTH, (k + 1) * DIGEST_LENGTH);
          if (!got.equals(index.get(first + k))) {
            const at = (first + k) * chunkSize;
            const expected = index.isZero(first + k) ? 'zeros' : `SHA-256 ${toHex(index.get(first + k))}`;
            const actual = got.every((b) => b === 0) ? 'zeros' : `SHA-256 ${toHex(got)}`;
            throw new IoError(`verifying ${what} failed: the chunk at offset ${at} reads back as ${actual}, the backup has ${expected}`);
          }
        }
      } finally {
        slots.release(slot);
      }
      bytesDone += length;
      req.onProgress?.({ bytesDone, bytesTotal: index.size });
    });
  } finally {
    await pool.disposeSlots(slots);
  }
}
