/** What an NBD server serves: the export's size, reads, and writes when it is writable. */

/** base:allocation extents, as a backend reports them: `flags` are StateFlag bits. */
export interface ExportExtent {
  readonly length: number;
  readonly flags: number;
}

/**
 * What the server serves. `read` fills every byte of `into` (the server may hand it a
 * reused buffer). A writable backend has `write`, `zero` and `trim`; `flush` is optional.
 * Errors thrown become NBD errors: ENOSPC when the cause is a full disk (ENOSPC, EDQUOT,
 * EFBIG), EIO otherwise.
 */
export interface ExportBackend {
  readonly size: number;
  readonly writable: boolean;
  read(offset: number, into: Buffer): Promise<void>;
  write?(offset: number, data: Buffer): Promise<void>;
  /** Makes the range read as zeros. */
  zero?(offset: number, length: number): Promise<void>;
  /** The range is no longer needed; it may read as anything afterwards (zeros, here). */
  trim?(offset: number, length: number): Promise<void>;
  flush?(): Promise<void>;
  /**
   * base:allocation from `offset`: extents that together cover at least one byte and at
   * most `length` bytes. Without it, the server offers no meta context.
   */
  blockStatus?(offset: number, length: number): Promise<ExportExtent[]>;
}
