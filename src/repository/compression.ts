/**
 * zstd for blobs, through the native binding so that compression and decompression
 * write into buffers the caller owns (no allocation per blob). A blob that does not
 * shrink is stored as it is (compression None), so incompressible data costs nothing on
 * restore.
 */
import { createHash } from 'node:crypto';
import binding from 'zstd-napi/binding.js';
import { Compression } from './pack.js';

/** Level 1: measured ~10 % faster than 3 for 1.3 % more stored bytes (docs/benchmarks.md). */
export const DEFAULT_COMPRESSION_LEVEL = 1;

/**
 * How blobs are encoded: what the repository hands to every chunk worker so that they
 * encode and decode exactly as it does. Plain data that crosses a thread boundary; an
 * encrypted repository will add its keys here.
 */
export interface CodecSpec {
  readonly compressionLevel: number;
}

export const DEFAULT_CODEC: CodecSpec = { compressionLevel: DEFAULT_COMPRESSION_LEVEL };

export function createBlobCodec(spec: CodecSpec = DEFAULT_CODEC): BlobCodec {
  return new BlobCodec(spec.compressionLevel);
}

export interface Encoded {
  readonly compression: Compression;
  readonly data: Buffer;
}

/** Worst-case compressed size of `n` bytes. */
export function compressBound(n: number): number {
  return binding.compressBound(n);
}

export class BlobCodec {
  private readonly cctx = new binding.CCtx();
  private readonly dctx = new binding.DCtx();

  constructor(private readonly level: number = DEFAULT_COMPRESSION_LEVEL) {}

  /**
   * Compresses `plain` into `out` (at least compressBound(plain.length) long). Returns the
   * compression used and the bytes written to `out`; with None, the caller stores `plain`.
   */
  encodeInto(plain: Uint8Array, out: Uint8Array, level = this.level): { compression: Compression; length: number } {
    const length = this.cctx.compress(out, plain, level);
    // Keep compressed data only if it saves at least 1/64: otherwise restore pays for nothing.
    if (length < plain.length - (plain.length >> 6)) return { compression: Compression.Zstd, length };
    return { compression: Compression.None, length: plain.length };
  }

  encode(plain: Buffer): Encoded {
    const out = Buffer.allocUnsafe(compressBound(plain.length));
    const r = this.encodeInto(plain, out);
    return r.compression === Compression.Zstd ? { compression: r.compression, data: out.subarray(0, r.length) } : { compression: r.compression, data: plain };
  }

  /** Decodes into `out` (exactly rawLength long); throws on malformed input or a wrong length. */
  decodeInto(compression: Compression, data: Uint8Array, out: Uint8Array): void {
    if (compression === Compression.None) {
      if (data.length !== out.length) throw new Error(`stored ${data.length} bytes, expected ${out.length}`);
      out.set(data);
      return;
    }
    const n = this.dctx.decompress(out, data);
    if (n !== out.length) throw new Error(`decoded ${n} bytes, expected ${out.length}`);
  }

  decode(compression: Compression, data: Buffer, rawLength: number): Buffer {
    if (compression === Compression.None) {
      if (data.length !== rawLength) throw new Error(`stored ${data.length} bytes, expected ${rawLength}`);
      return data;
    }
    const out = Buffer.allocUnsafe(rawLength);
    this.decodeInto(compression, data, out);
    return out;
  }
}

/**
 * Decodes a stored blob into `out` (exactly its plain length) and checks it against its
 * SHA-256. Returns why it failed, or undefined when the blob is good. The only
 * decode-and-verify: the chunk workers and the calling thread both use it.
 */
export function decodeVerified(codec: BlobCodec, compression: Compression, stored: Uint8Array, out: Buffer, digestHex: string): string | undefined {
  try {
    codec.decodeInto(compression, stored, out);
  } catch (err) {
    return (err as Error).message;
  }
  if (createHash('sha256').update(out).digest('hex') !== digestHex) return 'content does not match its digest';
  return undefined;
}
