/**
 * Known disk content for the conformance suites: deterministic from a seed, with the shapes a
 * disk has — random data, text-like data, holes of zeros — laid out so that reads can cross a
 * chunk boundary, a data/hole edge, and end in a partial last block.
 */

/** A small, fast PRNG (mulberry32): the same seed gives the same bytes everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export interface KnownDisk {
  readonly bytes: Buffer;
  /** Ranges that are all zeros, each 64 KiB-aligned and at least 256 KiB long. */
  readonly holes: readonly { readonly start: number; readonly length: number }[];
}

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * `size` bytes (at least 4 MiB, a multiple of 512): random from 0, a 1 MiB hole at 1 MiB,
 * text from 2 MiB, a 512 KiB hole at 3 MiB, random from 3.5 MiB to the last byte.
 */
export function knownDisk(size: number, seed = 1): KnownDisk {
  if (size < 4 * MIB || size % 512 !== 0) throw new RangeError(`a known disk is at least 4 MiB, in 512-byte sectors; ${size} is not`);
  const bytes = Buffer.alloc(size);
  const next = prng(seed);
  const random = (start: number, end: number) => {
    for (let o = start; o < end; o += 4) {
      const v = next();
      for (let i = 0; i < 4 && o + i < end; i++) bytes[o + i] = (v >>> (8 * i)) & 255;
    }
  };
  random(0, MIB);
  let o = 2 * MIB;
  for (let line = 0; o < 3 * MIB; line++) o += bytes.write(`line ${line} of the known disk, seed ${seed}\n`, o, 3 * MIB - o);
  random(3 * MIB + 512 * KIB, size);
  return { bytes, holes: [{ start: MIB, length: MIB }, { start: 3 * MIB, length: 512 * KIB }] };
}

/** Whether [start, start+length) holds only zeros. */
export function allZero(bytes: Buffer, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) if (bytes[i] !== 0) return false;
  return true;
}
