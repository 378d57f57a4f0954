/**
 * A DiskSource whose reads go through a shared bandwidth limit, and are counted: the
 * limit of a batch applies to all its streams together, and the report states what was
 * transferred.
 */
import type { ChangesUnknown, DiskSource, Extent } from '../sources/types.js';
import { CancelledError } from '../errors.js';
import type { ByteLimiter } from './rate-limit.js';

/** Bytes read through every LimitedSource sharing it. */
export class TransferCounter {
  bytes = 0;
}

export class LimitedSource implements DiskSource {
  readonly description: string;
  readonly size: number;

  constructor(private readonly inner: DiskSource, private readonly limiter: ByteLimiter, private readonly counter?: TransferCounter,
    private readonly signal?: AbortSignal) {
    this.description = inner.description;
    this.size = inner.size;
  }

  allocated(offset: number, length: number): Promise<Extent[]> {
    return this.inner.allocated(offset, length);
  }

  changedSince(token: string): Promise<Extent[] | ChangesUnknown> {
    return this.inner.changedSince(token);
  }

  changeToken(): Promise<string | undefined> {
    return this.inner.changeToken();
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    // A cancelled batch fails the backups it is reading: they clean up as any failed backup does.
    if (this.signal?.aborted) throw new CancelledError(`reading ${this.description} stopped: the run was cancelled`);
    await this.limiter.take(length);
    const buf = await this.inner.read(offset, length, into);
    if (this.counter) this.counter.bytes += length;
    return buf;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
