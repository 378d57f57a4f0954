// Types of disk-image.mjs, for the TypeScript tests.

/** The generator's unit: regions, runs and changed extents are multiples of it (but for an image's tail). */
export declare const BLOCK: number;
/** Size of the pieces that dup regions repeat. */
export declare const PIECE: number;

export type RegionKind = 'hole' | 'zero' | 'text' | 'random' | 'dup';

export interface Region {
  readonly start: number;
  readonly length: number;
  readonly kind: RegionKind;
}

/** A changed area as vSphere's QueryChangedDiskAreas reports it. */
export interface ChangedExtent {
  readonly start: number;
  readonly length: number;
}

/** "512M", "2G", "4096" → bytes (binary units). */
export declare function parseSize(s: string): number;

/** Makes a sparse image; returns its regions in order (adjacent regions of one kind merged). */
export declare function make(opts: { out: string; size: number | string; seed?: number }): Promise<{ size: number; regions: Region[] }>;

/** Copies `input` to `out` and rewrites about `change` percent of its blocks; returns what it rewrote. */
export declare function mutate(opts: { input: string; out: string; change?: number; seed?: number; extents?: string }): Promise<{ size: number; extents: ChangedExtent[] }>;
