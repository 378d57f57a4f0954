/**
 * How a blob's plain bytes become its stored bytes and back, and how a blob is named: the
 * one codec the chunk workers and the calling thread share.
 *
 * - Plaintext repositories: id = SHA-256 of the plain bytes; stored = zstd frame, or the
 *   plain bytes when compression would not save 1/64 (so incompressible data costs nothing
 *   on restore).
 * - Encrypted repositories: id = HMAC-SHA256 of the plain bytes under the id key (dedup
 *   works, yet nobody without the key can test whether known data is stored); stored =
 *   the same compressed-or-plain bytes sealed with AES-256-GCM, the associated data binding
 *   them to their id, type, compression and length, so a blob moved or swapped inside a
 *   pack does not open.
 *
 * zstd goes through the native binding so that compression writes into buffers the caller
 * owns (no allocation per blob).
 */
import { createHash } from 'node:crypto';
import binding from 'zstd-napi/binding.js';
import { type RepositoryKeys, NONCE_LENGTH, SEAL_OVERHEAD, hmac, openInto, openedLength, sealInto } from './encryption.js';
import { type BlobType, Compression } from './pack.js';

/**
 * Level 3: on real files (the ext4 workload of docs/benchmarks.md) level 1 stores 5 % more
 * than level 3, which is what restic stores the same data in; level 3 costs ~1.4× level 1's
 * compression CPU, level 4 ~2.6× for 2 % less.
 */
export const DEFAULT_COMPRESSION_LEVEL = 3;

/**
 * How blobs are encoded: what the repository hands to every chunk worker so that they
 * encode and decode exactly as it does. Plain data that crosses a thread boundary.
 */
export interface CodecSpec {
  readonly compressionLevel: number;
  /** Present for an encrypted repository. */
  readonly keys?: RepositoryKeys;
}

export const DEFAULT_CODEC: CodecSpec = { compressionLevel: DEFAULT_COMPRESSION_LEVEL };

export function createBlobCodec(spec: CodecSpec = DEFAULT_CODEC): BlobCodec {
  return new BlobCodec(spec.compressionLevel, spec.keys);
}

export interface Encoded {
  readonly compression: Compression;
  readonly data: Buffer;
}

/** What a stored blob is, as far as its decoding is concerned (the associated data of a sealed blob). */
export interface BlobHeader {
  readonly id: Uint8Array;
  readonly type: BlobType;
  readonly compression: Compression;
  readonly rawLength: number;
}

/** Worst-case compressed size of `n` bytes. */
export function compressBound(n: number): number {
  return binding.compressBound(n);
}

/** Worst-case stored size of a blob of `n` plain bytes, encrypted or not. */
export function storedBound(n: number): number {
  return compressBound(n) + SEAL_OVERHEAD;
}

/** id | type | compression | rawLength (u32 LE): 38 bytes. */
export function blobAd(h: BlobHeader): Buffer {
  const ad = Buffer.allocUnsafe(38);
  ad.set(h.id, 0);
  ad.writeUInt8(h.type, 32);
  ad.writeUInt8(h.compression, 33);
  ad.writeUInt32LE(h.rawLength, 34);
  return ad;
}

export class BlobCodec {
  private readonly cctx = new binding.CCtx();
  private readonly dctx = new binding.DCtx();
  /** Where an encrypted, compressed blob is opened before it is decompressed: reused, grown as needed. */
  private scratch = Buffer.alloc(0);

  constructor(private readonly level: number = DEFAULT_COMPRESSION_LEVEL, private readonly keys?: RepositoryKeys) {}

  get encrypted(): boolean {
    return this.keys !== undefined;
  }

  /** The id of a blob with these plain bytes. */
  id(plain: Uint8Array): Buffer {
    return this.keys ? hmac(this.keys.id, plain) : createHash('sha256').update(plain).digest();
  }

  /**
   * Encodes `plain` into `out` (at least storedBound(plain.length) long). Returns the
   * compression used, the stored length, and whether the stored bytes are in `out`: without
   * encryption an uncompressed blob is stored as `plain` itself, and nothing is copied.
   */
  encodeInto(id: Uint8Array, type: BlobType, plain: Uint8Array, out: Uint8Array, level = this.level): { compression: Compression; length: number; inOutput: boolean } {
    const keys = this.keys;
    const body = keys ? out.subarray(NONCE_LENGTH) : out;
    const length = this.cctx.compress(body, plain, level);
    // Keep compressed data only if it saves at least 1/64: otherwise restore pays for nothing.
    let compression: Compression = Compression.Zstd;
    if (length >= plain.length - (plain.length >> 6)) {
      compression = Compression.None;
      if (!keys) return { compression, length: plain.length, inOutput: false };
    } else if (!keys) {
      return { compression, length, inOutput: true };
    }
    // Sealed into out: the compressed bytes in place, the plain ones straight from the input.
    const input = compression === Compression.None ? plain : body.subarray(0, length);
    const sealed = sealInto(keys.data, blobAd({ id, type, compression, rawLength: plain.length }), input, out);
    return { compression, length: sealed, inOutput: true };
  }

  encode(id: Uint8Array, type: BlobType, plain: Buffer): Encoded {
    const out = Buffer.allocUnsafe(storedBound(plain.length));
    const r = this.encodeInto(id, type, plain, out);
    return { compression: r.compression, data: r.inOutput ? out.subarray(0, r.length) : plain };
  }

  /** Decodes into `out` (exactly rawLength long); throws on a blob that does not open, is malformed, or has a wrong length. */
  decodeInto(header: BlobHeader, stored: Uint8Array, out: Uint8Array): void {
    let data = stored;
    if (this.keys) {
      const n = openedLength(stored);
      if (header.compression === Compression.None) {
        if (n !== out.length) throw new Error(`stored ${n} bytes, expected ${out.length}`);
        openInto(this.keys.data, blobAd(header), stored, out);
        return;
      }
      if (this.scratch.length < n) this.scratch = Buffer.allocUnsafeSlow(Math.max(n, 2 * this.scratch.length));
      data = this.scratch.subarray(0, n);
      openInto(this.keys.data, blobAd(header), stored, data);
    }
    if (header.compression === Compression.None) {
      if (data.length !== out.length) throw new Error(`stored ${data.length} bytes, expected ${out.length}`);
      out.set(data);
      return;
    }
    const n = this.dctx.decompress(out, data);
    if (n !== out.length) throw new Error(`decoded ${n} bytes, expected ${out.length}`);
  }
}

/**
 * Decodes a stored blob into `out` (exactly its plain length) and checks it against its id.
 * Returns why it failed, or undefined when the blob is good. The only decode-and-verify:
 * the chunk workers and the calling thread both use it.
 */
export function decodeVerified(codec: BlobCodec, header: BlobHeader, stored: Uint8Array, out: Buffer): string | undefined {
  try {
    codec.decodeInto(header, stored, out);
  } catch (err) {
    return (err as Error).message;
  }
  if (!codec.id(out).equals(header.id)) return 'content does not match its id';
  return undefined;
}
