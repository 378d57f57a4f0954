/**
 * Where each kind of object lives in a repository. docs/format.md describes the same.
 */
import { InputError } from '../errors.js';

export const FORMAT_NAME = 'vmbkp-repository';
export const FORMAT_VERSION = 1;

export const CONFIG = 'config';
export const DATA_PREFIX = 'data/';
export const INDEX_PREFIX = 'index/';
export const GENERATIONS_PREFIX = 'generations/';
export const LOCKS_PREFIX = 'locks/';

export function packName(idHex: string): string {
  return `data/${idHex.slice(0, 2)}/${idHex}`;
}
export function packIdFromName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}
export function indexName(idHex: string): string {
  return `index/${idHex}`;
}

const SET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function checkSetName(set: string): void {
  if (!SET_NAME.test(set)) {
    throw new InputError(`set name ${JSON.stringify(set)} is invalid: use letters, digits, ".", "_" and "-" (at most 128, not starting with "." or "-")`);
  }
}
const DISK_NAME = SET_NAME;
export function checkDiskName(disk: string): void {
  if (!DISK_NAME.test(disk)) {
    throw new InputError(`disk name ${JSON.stringify(disk)} is invalid: use letters, digits, ".", "_" and "-"`);
  }
}

export function generationName(set: string, generation: number): string {
  return `generations/${set}/${String(generation).padStart(8, '0')}.json`;
}
/** Parses "generations/SET/00000012.json" into its parts; undefined for anything else. */
export function parseGenerationName(name: string): { set: string; generation: number } | undefined {
  const m = /^generations\/([^/]+)\/(\d{8})\.json$/.exec(name);
  if (!m || !SET_NAME.test(m[1]!)) return undefined;
  return { set: m[1]!, generation: Number(m[2]) };
}
