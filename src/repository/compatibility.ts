/**
 * What two repositories share of how they name and store blobs, for copies between them
 * (docs/format.md, "Copies between repositories"):
 *
 * - same ids: a chunk has the same id in both (both plaintext: SHA-256; both encrypted with
 *   one master key: the same HMAC key). A copy then knows the destination's id of a chunk
 *   without reading it, and skips what the destination holds unread.
 * - same stored bytes: a blob stored in one opens in the other as it is (same ids and, when
 *   encrypted, the same data key), so a verified blob is copied without being encoded again.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Repository } from './repository.js';

export interface BlobCompatibility {
  readonly sameIds: boolean;
  readonly sameStored: boolean;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function blobCompatibility(a: Repository, b: Repository): BlobCompatibility {
  const ka = a.codecSpec.keys;
  const kb = b.codecSpec.keys;
  if (!ka && !kb) return { sameIds: true, sameStored: true };
  if (!ka || !kb) return { sameIds: false, sameStored: false };
  const sameIds = equal(ka.id, kb.id);
  return { sameIds, sameStored: sameIds && equal(ka.data, kb.data) };
}
