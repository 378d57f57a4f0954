/** SHA-256 digests as 32-byte buffers and their hex names. */
import { createHash } from 'node:crypto';

export const DIGEST_LENGTH = 32;

/** The index entry for a chunk that is all zeros (or a hole): never stored, never read. */
export const ZERO_DIGEST: Buffer = Buffer.alloc(DIGEST_LENGTH);

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function isZeroDigest(d: Uint8Array): boolean {
  return ZERO_DIGEST.equals(d);
}

export function toHex(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
}

const HEX64 = /^[0-9a-f]{64}$/;
export function isDigestHex(s: string): boolean {
  return HEX64.test(s);
}
