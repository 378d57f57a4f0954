/**
 * Reads exact byte counts from a stream socket. The protocol code asks for "the next n
 * bytes" (read) or "fill this buffer" (readInto); the reader buffers what arrives and fails
 * every waiting read when the connection ends or errors.
 *
 * Bytes can come from the socket's 'data' events, or be fed by the socket's `onread`
 * callback (feed) from regions of a large buffer (ReadRegions), which spares an
 * allocation per socket read and a copy of what has to wait for its reader.
 */
import type { Socket } from 'node:net';

interface Want { n: number; into?: Buffer; filled: number; resolve(b: Buffer): void; reject(e: Error): void }

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private wants: Want[] = [];
  private ended: Error | undefined;

  private readonly onData = (d: Buffer): void => { this.chunks.push(d); this.buffered += d.length; this.pump(); };
  private readonly onEnd = (): void => this.fail(new Error(`${this.describe}: the server closed the connection`));
  private readonly onClose = (): void => this.fail(new Error(`${this.describe}: the connection closed`));
  private readonly onError = (e: Error): void => this.fail(e);

  constructor(private readonly socket: Socket, private readonly describe: string) {
    socket.on('data', this.onData).on('end', this.onEnd).on('close', this.onClose).on('error', this.onError);
  }

  /**
   * Bytes from the socket's `onread` buffer: copied straight into a waiting readInto when
   * possible, else kept as they are (no copy). Returns true when it kept some: the caller
   * must then not reuse those bytes of its buffer (see ReadRegions).
   */
  feed(src: Buffer): boolean {
    let rest = src;
    while (rest.length > 0 && this.buffered === 0) {
      const w = this.wants[0];
      if (!w) break;
      if (!w.into) {
        // A header: copied out (the buffer is reused), and its reader, when it is a
        // callback (readThen), asks for what follows before the loop goes on.
        if (rest.length < w.n) break;
        const b = Buffer.from(rest.subarray(0, w.n));
        rest = rest.subarray(w.n);
        this.wants.shift();
        w.resolve(b);
        continue;
      }
      const k = Math.min(rest.length, w.n - w.filled);
      rest.copy(w.into, w.filled, 0, k);
      w.filled += k;
      rest = rest.subarray(k);
      if (w.filled === w.n) { this.wants.shift(); w.resolve(w.into); }
    }
    if (rest.length === 0) return false;
    this.chunks.push(rest);
    this.buffered += rest.length;
    this.pump();
    return true;
  }

  /** Stops reading the socket (before it is handed to TLS); returns how many bytes were left unread. */
  detach(): number {
    this.socket.off('data', this.onData).off('end', this.onEnd).off('close', this.onClose).off('error', this.onError);
    return this.buffered;
  }

  /** Resolves with exactly n bytes. */
  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.wants.push({ n, filled: 0, resolve, reject });
      this.pump();
    });
  }

  /** read(n), with `then` called synchronously once the bytes are there (see feed). */
  readThen(n: number, then: (b: Buffer) => void, fail: (e: Error) => void): void {
    this.wants.push({ n, filled: 0, resolve: then, reject: fail });
    this.pump();
  }

  /** readInto(into), with `then` called synchronously once it is filled. */
  readIntoThen(into: Buffer, then: (b: Buffer) => void, fail: (e: Error) => void): void {
    this.wants.push({ n: into.length, into, filled: 0, resolve: then, reject: fail });
    this.pump();
  }

  /** Reads exactly into.length bytes straight into `into` (no intermediate buffer). */
  readInto(into: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.wants.push({ n: into.length, into, filled: 0, resolve, reject });
      this.pump();
    });
  }

  fail(e: Error): void {
    this.ended ??= e;
    this.pump();
  }

  /** Moves up to n buffered bytes into `out` at `at`; returns how many. */
  private drain(out: Buffer, at: number, n: number): number {
    let o = 0;
    while (o < n && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, at + o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= o;
    return o;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.chunks[0] = first.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    this.drain(out, 0, n);
    return out;
  }

  private pump(): void {
    while (this.wants.length > 0) {
      const w = this.wants[0]!;
      if (w.into) {
        w.filled += this.drain(w.into, w.filled, w.n - w.filled);
        if (w.filled === w.n) { this.wants.shift(); w.resolve(w.into); continue; }
      } else if (this.buffered >= w.n) {
        this.wants.shift();
        w.resolve(this.take(w.n));
        continue;
      }
      if (!this.ended) return;
      this.wants.shift();
      w.reject(this.ended);
    }
  }
}

/**
 * The buffers a socket's `onread` reads into: one region of a large buffer, reused while
 * the reader copies everything out at once; when the reader keeps bytes (a reply header
 * and the data after it, before the client asked for that data), the next read goes after
 * them, or into a new buffer when too little is left.
 */
export class ReadRegions {
  private static readonly MIN_REGION = 64 * 1024;
  private region: Buffer;

  constructor(private readonly size: number) {
    this.region = Buffer.allocUnsafe(size);
  }

  /** The buffer for the next socket read (onread's `buffer` function). */
  next(): Buffer {
    return this.region;
  }

  /** The first n bytes of the current region are kept by the reader. */
  keep(n: number): void {
    const rest = this.region.subarray(n);
    this.region = rest.length >= ReadRegions.MIN_REGION ? rest : Buffer.allocUnsafe(this.size);
  }
}
