/**
 * A chunk worker: zero detection, blob ids, compression (and encryption) and verified
 * decoding, off the main thread so that reading, hashing and encoding overlap on every core.
 */
import { parentPort } from 'node:worker_threads';
import { createBlobCodec, decodeVerified } from './blob-codec.js';
import { BlobType } from './pack.js';
import { DIGEST_LENGTH } from './digest.js';
import type { DecodeReply, EncodeReply, EncodedChunk, SlotBuffers, WorkerRequest } from './chunk-protocol.js';

const port = parentPort;
if (!port) throw new Error('chunk-worker must run in a worker thread');

interface Slot { input: Buffer; output: Buffer; digests: Buffer }

let codec = createBlobCodec();
const slots = new Map<number, Slot>();
const PAGE = 4096;
const ZEROS = Buffer.alloc(1024 * 1024);

function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZEROS.length) {
    const part = b.subarray(o, Math.min(b.length, o + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/** [start, end) pairs of the 4 KiB pages of `b` that hold data. */
function dataRuns(b: Buffer): number[] {
  const runs: number[] = [];
  let start = -1;
  for (let o = 0; o < b.length; o += PAGE) {
    const end = Math.min(b.length, o + PAGE);
    const zero = b.subarray(o, end).equals(ZEROS.subarray(0, end - o));
    if (!zero && start < 0) start = o;
    if (zero && start >= 0) { runs.push(start, o); start = -1; }
  }
  if (start >= 0) runs.push(start, b.length);
  return runs;
}

function slot(id: number): Slot {
  const s = slots.get(id);
  if (!s) throw new Error(`slot ${id} is not attached`);
  return s;
}

function attach(b: SlotBuffers): void {
  slots.set(b.id, { input: Buffer.from(b.input), output: Buffer.from(b.output), digests: Buffer.from(b.digests) });
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.op) {
    case 'attach':
      attach(msg.slot);
      port.postMessage({ ok: true });
      return;
    case 'detach':
      slots.delete(msg.slot);
      port.postMessage({ ok: true });
      return;
    case 'configure':
      codec = createBlobCodec(msg.codec);
      port.postMessage({ ok: true });
      return;
    case 'hash': {
      const s = slot(msg.slot);
      const n = Math.ceil(msg.length / msg.chunkSize);
      for (let i = 0; i < n; i++) {
        const chunk = s.input.subarray(i * msg.chunkSize, Math.min(msg.length, (i + 1) * msg.chunkSize));
        if (isZero(chunk)) s.digests.fill(0, i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH);
        else codec.id(chunk).copy(s.digests, i * DIGEST_LENGTH);
      }
      port.postMessage({ ok: true });
      return;
    }
    case 'encode': {
      const s = slot(msg.slot);
      const chunks: EncodedChunk[] = [];
      let offset = 0;
      for (const c of msg.chunks) {
        const start = c * msg.chunkSize;
        const plain = s.input.subarray(start, Math.min(msg.length, start + msg.chunkSize));
        const id = s.digests.subarray(c * DIGEST_LENGTH, (c + 1) * DIGEST_LENGTH);
        const r = codec.encodeInto(id, BlobType.Chunk, plain, s.output.subarray(offset), msg.level);
        if (!r.inOutput) {
          chunks.push({ chunk: c, compression: r.compression, inOutput: false, offset: start, length: plain.length });
        } else {
          chunks.push({ chunk: c, compression: r.compression, inOutput: true, offset, length: r.length });
          offset += r.length;
        }
      }
      port.postMessage({ chunks } satisfies EncodeReply);
      return;
    }
    case 'decode': {
      const s = slot(msg.slot);
      const runs: number[][] = [];
      let o = 0;
      for (let i = 0; i < msg.blobs.length; i++) {
        const b = msg.blobs[i]!;
        const out = s.output.subarray(o, o + b.rawLength);
        o += b.rawLength;
        const header = { id: Buffer.from(b.digest, 'hex'), type: b.type, compression: b.compression, rawLength: b.rawLength };
        const reason = decodeVerified(codec, header, s.input.subarray(b.offset, b.offset + b.length), out);
        if (reason !== undefined) {
          port.postMessage({ ok: false, failed: i, reason } satisfies DecodeReply);
          return;
        }
        if (msg.findData) runs.push(dataRuns(out));
      }
      port.postMessage((msg.findData ? { ok: true, runs } : { ok: true }) satisfies DecodeReply);
      return;
    }
  }
});
