/**
 * Reads exact byte counts from a stream socket. The protocol code asks for "the next n
 * bytes"; the reader buffers what arrives and fails every waiting read when the
 * connection ends or errors.
 */
import type { Socket } from 'node:net';

interface Want { n: number; into?: Buffer; resolve(b: Buffer): void; reject(e: Error): void }

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

  /** Stops reading the socket (before it is handed to TLS); returns how many bytes were left unread. */
  detach(): number {
    this.socket.off('data', this.onData).off('end', this.onEnd).off('close', this.onClose).off('error', this.onError);
    return this.buffered;
  }

  /** Resolves with exactly n bytes. */
  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.wants.push({ n, resolve, reject });
      this.pump();
    });
  }

  /** Reads exactly into.length bytes straight into `into` (no intermediate buffer). */
  readInto(into: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.wants.push({ n: into.length, into, resolve, reject });
      this.pump();
    });
  }

  fail(e: Error): void {
    this.ended ??= e;
    this.pump();
  }

  private take(n: number, into?: Buffer): Buffer {
    if (n === 0) return into ?? Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (!into && first.length >= n) {
      this.chunks[0] = first.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = into ?? Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  private pump(): void {
    while (this.wants.length > 0) {
      const w = this.wants[0]!;
      if (this.buffered >= w.n) {
        this.wants.shift();
        w.resolve(this.take(w.n, w.into));
      } else if (this.ended) {
        this.wants.shift();
        w.reject(this.ended);
      } else {
        return;
      }
    }
  }
}
