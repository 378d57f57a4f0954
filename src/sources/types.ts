/**
 * DiskSource and DiskTarget: what the engine reads a disk from and restores a disk to.
 * File, NBD and vSphere disks all look like this to the engine.
 */

/** A byte range of a disk, the shape of vSphere's changed areas. */
export interface Extent {
  readonly start: number;
  readonly length: number;
}

/** Why a source cannot tell what changed: "changed-block tracking is off on VM web01". */
export interface ChangesUnknown {
  readonly unknown: string;
}

export interface DiskSource {
  /** What the source is, for messages and manifests ("file:/images/web01.img"). */
  readonly description: string;
  readonly size: number;
  /** Why this source reads more than it needs to (a `file:` disk without hole detection), for the user once. */
  readonly warning?: string | undefined;
  /**
   * Reads are served on this machine (a local file): no server round trip to hide, so a
   * backup keeps fewer segments in flight, and less memory.
   */
  readonly local?: boolean;
  /**
   * Extents of [offset, offset+length) that may hold data; the rest reads as zeros.
   * A source that cannot tell returns the whole range.
   */
  allocated(offset: number, length: number): Promise<Extent[]>;
  /**
   * Extents changed since `token` (a change id from an earlier backup), or why they are
   * unknown (no tracking, token invalid, disk reset).
   */
  changedSince(token: string): Promise<Extent[] | ChangesUnknown>;
  /** A token that identifies the disk's current state, for a later changedSince. */
  changeToken(): Promise<string | undefined>;
  /** Reads exactly `length` bytes at `offset` into a new or given buffer. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export interface DiskTarget {
  readonly description: string;
  readonly size: number;
  /** True when unwritten ranges already read as zeros (a new sparse file), so zero chunks need no write. */
  readonly zeroed: boolean;
  /**
   * True when writes must come in increasing offset order (a stream, such as an HTTP
   * upload of a whole file); ranges skipped between writes become zeros.
   */
  readonly sequential?: boolean;
  write(offset: number, data: Uint8Array): Promise<void>;
  zero(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Closes and removes what this target created, after a failed restore; absent when it cannot. */
  discard?(): Promise<void>;
}

/** A target a restore writes and then checks: it can read back what it wrote. */
export interface RestoreTarget extends DiskTarget {
  /** Reads back written data; valid once flush() has returned. */
  readBack(offset: number, length: number, into: Buffer): Promise<void>;
}
