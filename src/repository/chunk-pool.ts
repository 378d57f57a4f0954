/**
 * A pool of chunk workers and the shared slots they work in. Each worker answers in
 * order, so a FIFO of resolvers per worker pairs replies with requests. Slots are
 * attached to every worker, so any idle worker can take any step of any segment.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CodecSpec } from './blob-codec.js';
import type { DecodeBlob, DecodeReply, EncodeReply, EncodedChunk, WorkerRequest } from './chunk-protocol.js';

interface Pending { resolve(v: unknown): void; reject(e: unknown): void }
interface WorkerSlot { worker: Worker; queue: Pending[] }

/** A shared work area: input, output and digests, seen by the main thread and every worker. */
export interface Slot {
  readonly id: number;
  readonly input: Buffer;
  readonly output: Buffer;
  readonly digests: Buffer;
}

export interface SlotSizes {
  readonly input: number;
  readonly output: number;
  readonly digests: number;
}

/** A fixed set of slots; acquire waits for a free one. */
export class SlotSet {
  private readonly waiting: ((s: Slot) => void)[] = [];
  constructor(private readonly free: Slot[], readonly all: readonly Slot[]) {}

  acquire(): Promise<Slot> {
    const s = this.free.pop();
    return s ? Promise.resolve(s) : new Promise((resolve) => this.waiting.push(resolve));
  }

  release(s: Slot): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }
}

let nextSlotId = 1;

const workerUrl = new URL('./chunk-worker.js', import.meta.url);
/** Workers started ahead of any pool (startWorkersEarly), unreferenced until a pool takes them. */
const spare: Worker[] = [];
/** Each spare worker's listener that drops it from `spare` when it fails. */
const dropOf = new Map<Worker, () => void>();

/**
 * Starts chunk workers now for the next pool to take. A backup calls this before it opens
 * the repository, so that the workers' start-up (~0.15 CPU-s each: Node boots a thread and
 * loads the codec) runs while the key is derived (scrypt, on libuv's pool) instead of after.
 * Unreferenced: they keep no process alive that ends (a wrong password) before a pool takes them.
 */
export function startWorkersEarly(size = defaultPoolSize()): void {
  while (spare.length < size) {
    const worker = new Worker(workerUrl);
    worker.unref();
    // One that fails before a pool takes it is dropped; the pool starts a fresh one instead.
    const drop = () => { const i = spare.indexOf(worker); if (i >= 0) spare.splice(i, 1); };
    worker.once('error', drop);
    worker.once('exit', drop);
    dropOf.set(worker, drop);
    spare.push(worker);
  }
}

function takeWorker(): Worker {
  const worker = spare.shift();
  if (!worker) return new Worker(workerUrl);
  const drop = dropOf.get(worker);
  dropOf.delete(worker);
  if (drop) { worker.off('error', drop); worker.off('exit', drop); }
  worker.ref();
  return worker;
}

export class ChunkPool {
  private readonly workers: WorkerSlot[] = [];
  private failure: unknown;

  /** `codec` is the repository's (Repository.codecSpec); the default decodes any blob and compresses at the default level. */
  constructor(size = defaultPoolSize(), codec?: CodecSpec) {
    for (let i = 0; i < size; i++) {
      const worker = takeWorker();
      const w: WorkerSlot = { worker, queue: [] };
      worker.on('message', (m) => w.queue.shift()?.resolve(m));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`chunk worker exited with code ${code}`)); });
      this.workers.push(w);
    }
    // Started early but more than this pool takes: not needed.
    for (const w of spare.splice(0)) { dropOf.delete(w); void w.terminate(); }
    if (codec !== undefined) {
      for (const w of this.workers) this.send(w, { op: 'configure', codec }).catch(() => {});
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private fail(e: unknown): void {
    this.failure ??= e;
    for (const w of this.workers) for (const p of w.queue.splice(0)) p.reject(e);
  }

  private send<T>(w: WorkerSlot, msg: WorkerRequest): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      w.queue.push({ resolve: resolve as (v: unknown) => void, reject });
      w.worker.postMessage(msg);
    });
  }

  private leastBusy(): WorkerSlot {
    let best = this.workers[0]!;
    for (const w of this.workers) if (w.queue.length < best.queue.length) best = w;
    return best;
  }

  /** Allocates `count` slots once and shows them to every worker. */
  async createSlots(count: number, sizes: SlotSizes): Promise<SlotSet> {
    const slots: Slot[] = [];
    for (let i = 0; i < count; i++) {
      const bufs = { id: nextSlotId++, input: new SharedArrayBuffer(sizes.input), output: new SharedArrayBuffer(sizes.output), digests: new SharedArrayBuffer(sizes.digests) };
      await Promise.all(this.workers.map((w) => this.send(w, { op: 'attach', slot: bufs })));
      slots.push({ id: bufs.id, input: Buffer.from(bufs.input), output: Buffer.from(bufs.output), digests: Buffer.from(bufs.digests) });
    }
    return new SlotSet([...slots], slots);
  }

  async disposeSlots(set: SlotSet): Promise<void> {
    if (this.failure) return;
    await Promise.all(set.all.flatMap((s) => this.workers.map((w) => this.send(w, { op: 'detach', slot: s.id }))));
  }

  /** Zero-detects and hashes slot.input[0, length) chunk by chunk into slot.digests. */
  async hash(slot: Slot, length: number, chunkSize: number): Promise<void> {
    await this.send(this.leastBusy(), { op: 'hash', slot: slot.id, length, chunkSize });
  }

  /** Compresses the named chunks; returns where each one's stored form lies. */
  async encode(slot: Slot, length: number, chunkSize: number, chunks: number[], level?: number): Promise<EncodedChunk[]> {
    if (chunks.length === 0) return [];
    const reply = await this.send<EncodeReply>(this.leastBusy(), { op: 'encode', slot: slot.id, length, chunkSize, chunks, ...(level === undefined ? {} : { level }) });
    return reply.chunks;
  }

  /** Decompresses and verifies blobs from slot.input into slot.output. */
  decode(slot: Slot, blobs: DecodeBlob[], findData: boolean): Promise<DecodeReply> {
    return this.send<DecodeReply>(this.leastBusy(), { op: 'decode', slot: slot.id, blobs, findData });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

/** One worker per core (at most 8); VMBKP_WORKERS overrides it. */
export function defaultPoolSize(): number {
  const forced = Number(process.env['VMBKP_WORKERS']);
  if (Number.isInteger(forced) && forced >= 1 && forced <= 64) return forced;
  return Math.max(1, Math.min(availableParallelism(), 8));
}
