/** `--changed DISK=FILE`: a disk's changed extents from a JSON file, in a module of its own so that reading them loads no backup machinery. */
import { readFile } from 'node:fs/promises';
import { InputError, describeCause } from '../errors.js';
import { parseExtentsJson } from '../engine/extents.js';
import type { Extent } from '../sources/types.js';

/** A disk's changed extents since the previous generation, from a JSON file (`--changed DISK=FILE`). */
export async function readChangedExtents(disk: string, file: string): Promise<Extent[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`reading changed extents ${file} for disk ${disk} failed: ${describeCause(err)}`, { cause: err });
  }
  return parseExtentsJson(text, `changed extents ${file}`);
}
