/**
 * Where a local file holds data, through SEEK_DATA/SEEK_HOLE (native/seek.c, built by
 * scripts/build-native.mjs). Without the addon (no compiler at install) every byte counts as
 * data: the backup is the same, only slower on sparse images, as the engine then reads holes
 * and finds them zero.
 */
import { createRequire } from 'node:module';
import type { Extent } from './types.js';

interface SeekAddon {
  dataExtents(fd: number, offset: number, length: number): number[];
}

function loadNative(): SeekAddon | undefined {
  // Tests set this to check that the fallback backs up the same.
  if (process.env['VMBKP_NATIVE_SEEK'] === '0') return undefined;
  try {
    const addon = createRequire(import.meta.url)(new URL('../../../build/seek.node', import.meta.url).pathname) as SeekAddon;
    return typeof addon.dataExtents === 'function' ? addon : undefined;
  } catch {
    return undefined;
  }
}

const native = loadNative();
let fallbackTold = false;

/**
 * The warning to give about reading holes, once per process: undefined when hole detection
 * works or the warning was given already.
 */
export function holeDetectionWarning(): string | undefined {
  if (native || fallbackTold) return undefined;
  fallbackTold = true;
  return 'hole detection is unavailable (build/seek.node is missing: no C compiler when vmbkp was installed?): '
    + 'file: disks are read whole, holes included; the backup is the same, only slower on sparse images';
}

/**
 * Extents of [offset, offset+length) of the open file `fd` that may hold data (sorted,
 * not touching), or undefined when this cannot be told (no addon).
 */
export function dataExtents(fd: number, offset: number, length: number): Extent[] | undefined {
  if (!native) return undefined;
  const flat = native.dataExtents(fd, offset, length);
  const out: Extent[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ start: flat[i]!, length: flat[i + 1]! - flat[i]! });
  return out;
}
