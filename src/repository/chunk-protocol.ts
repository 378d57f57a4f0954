/**
 * Messages between the engine and its chunk workers. Data lives in shared slots
 * (SharedArrayBuffers attached to every worker once), so a message names a slot and
 * carries no bytes: no copies, no transfers, no allocation per segment.
 */
import type { CodecSpec } from './blob-codec.js';
import type { BlobType, Compression } from './pack.js';

export interface SlotBuffers {
  readonly id: number;
  /** Plain disk data (backup) or stored blobs as read from a pack (restore). */
  readonly input: SharedArrayBuffer;
  /** Encoded blobs (backup) or decoded chunks (restore). */
  readonly output: SharedArrayBuffer;
  /** 32 bytes per chunk of a backup segment. */
  readonly digests: SharedArrayBuffer;
}

export interface AttachRequest { op: 'attach'; slot: SlotBuffers }
export interface DetachRequest { op: 'detach'; slot: number }
/** The repository's codec, so that workers encode and decode as it does. */
export interface ConfigureRequest { op: 'configure'; codec: CodecSpec }

/** Zero-detect and hash every chunk of input[0, length); digests go to the slot (zeros for a zero chunk). */
export interface HashRequest { op: 'hash'; slot: number; length: number; chunkSize: number }

/**
 * Encode the named chunks of input into output, at `level` when given (a job's own), else the
 * codec's. Their ids are the slot's digests (a hash request on the same slot came first).
 */
export interface EncodeRequest { op: 'encode'; slot: number; length: number; chunkSize: number; chunks: number[]; level?: number }
/** Where a chunk's stored form is: in output, or (plaintext repositories, not compressed) the plain bytes in input. */
export interface EncodedChunk { chunk: number; compression: Compression; inOutput: boolean; offset: number; length: number }
export interface EncodeReply { chunks: EncodedChunk[] }

export interface DecodeBlob {
  /** The stored blob within input. */
  offset: number;
  length: number;
  type: BlobType;
  compression: Compression;
  rawLength: number;
  digest: string;
}
/** Decode and verify blobs from input into output, back to back in request order. */
export interface DecodeRequest { op: 'decode'; slot: number; blobs: DecodeBlob[]; findData: boolean }
/**
 * On success, with findData, `runs[i]` lists [start, end) pairs within blob i (4 KiB
 * granularity) that are not zeros, so a sparse target is written only where data is.
 */
export type DecodeReply = { ok: true; runs?: number[][] } | { ok: false; failed: number; reason: string };

export type WorkerRequest = AttachRequest | DetachRequest | ConfigureRequest | HashRequest | EncodeRequest | DecodeRequest;
