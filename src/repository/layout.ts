/**
 * Where each kind of object lives in a repository. docs/format.md describes the same.
 */
import { InputError } from '../errors.js';

export const FORMAT_NAME = 'vmbkp-repository';
/** Version 1: plaintext. Version 2: encrypted (keys, sealed objects, hidden set names). */
export const PLAIN_FORMAT_VERSION = 1;
export const ENCRYPTED_FORMAT_VERSION = 2;

export const CONFIG = 'config';
export const DATA_PREFIX = 'data/';
export const INDEX_PREFIX = 'index/';
export const GENERATIONS_PREFIX = 'generations/';
export const LOCKS_PREFIX = 'locks/';
export const KEYS_PREFIX = 'keys/';
/** Maintenance records (records.ts): the last verify and gc. */
export const RECORDS_PREFIX = 'records/';

export function keyName(idHex: string): string {
  return `${KEYS_PREFIX}${idHex}`;
}

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

/**
 * A generation's manifest. `dir` is the set's directory: its name in a plaintext repository,
 * the hex HMAC of its name in an encrypted one (set names must not appear in object names),
 * where the manifest also loses its `.json` (it is not JSON as stored).
 */
export function generationName(dir: string, generation: number, encrypted = false): string {
  return `generations/${dir}/${String(generation).padStart(8, '0')}${encrypted ? '' : '.json'}`;
}
/** Parses "generations/DIR/00000012.json" (or without .json, encrypted) into its parts; undefined for anything else. */
export function parseGenerationName(name: string, encrypted = false): { dir: string; generation: number } | undefined {
  const m = (encrypted ? /^generations\/([0-9a-f]{64})\/(\d{8})$/ : /^generations\/([^/]+)\/(\d{8})\.json$/).exec(name);
  if (!m || !SET_NAME.test(m[1]!)) return undefined;
  return { dir: m[1]!, generation: Number(m[2]) };
}
