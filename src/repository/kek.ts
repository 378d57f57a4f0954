/**
 * The key-encryption key of a key object: scrypt of a password (memory-hard; its parameters
 * are stored with each key, so they can be raised for new keys without breaking old ones).
 *
 * A derivation may start before the repository is opened (startKeyDerivation): scrypt takes
 * about a quarter of a second on libuv's thread pool, and a command's modules load on the
 * main thread meanwhile instead of before. This module parses a key object's kdf fields by
 * hand, without the schemas of keys.ts, for that reason: the early start must not wait for
 * them to load. keys.ts still checks every key object in full before its key is used.
 */
import { createHash, scrypt as scryptCallback } from 'node:crypto';
import type { StorageBackend } from '../storage/backend.js';
import { KEYS_PREFIX } from './layout.js';

export interface KdfParams {
  /** CPU/memory cost: a power of two. Memory used is 128 × N × r bytes. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** Beyond these, a key object is taken for damaged rather than allocate what it asks. */
export const MAX_KDF_MEMORY = 4 * 1024 ** 3;
export const MAX_R = 64;
export const MAX_P = 16;
/** An AES-256 key, as encryption.ts's KEY_LENGTH (not imported: that module loads the AEAD addon). */
export const KEK_LENGTH = 32;

/** Bytes scrypt uses with these parameters. */
export function kdfMemory(k: KdfParams): number {
  return 128 * k.N * k.r;
}

/** Derivations started early, by (password, salt, parameters); each is taken once. */
const started = new Map<string, Promise<Buffer>>();

function startedKey(password: string, salt: Buffer, k: KdfParams): string {
  const pw = createHash('sha256').update('vmbkp kek\0').update(password, 'utf8').digest('hex');
  return `${pw}:${salt.toString('base64')}:${k.N}:${k.r}:${k.p}`;
}

function scrypt(password: string, salt: Buffer, k: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(Buffer.from(password, 'utf8'), salt, KEK_LENGTH, { N: k.N, r: k.r, p: k.p, maxmem: kdfMemory(k) * 2 + 64 * 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Derivations started and not yet taken by an open (for tests). */
export function pendingKeyDerivations(): number {
  return started.size;
}

/** The KEK of `password` with this salt and these parameters: one started early, else a new derivation. */
export function deriveKek(password: string, salt: Buffer, k: KdfParams): Promise<Buffer> {
  const key = startedKey(password, salt, k);
  const early = started.get(key);
  if (early) {
    started.delete(key);
    return early;
  }
  return scrypt(password, salt, k);
}

/** The salt and parameters of a key object's text, or undefined unless they look sound. */
export function kdfOfKeyText(text: string): { salt: Buffer; kdf: KdfParams } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const kdf = (json as { kdf?: Record<string, unknown> } | null)?.kdf;
  if (!kdf || kdf['name'] !== 'scrypt' || typeof kdf['salt'] !== 'string') return undefined;
  const { N, r, p } = kdf;
  if (!Number.isInteger(N) || !Number.isInteger(r) || !Number.isInteger(p)) return undefined;
  const params = { N: N as number, r: r as number, p: p as number };
  if (params.N < 2 || (params.N & (params.N - 1)) !== 0 || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) return undefined;
  if (kdfMemory(params) > MAX_KDF_MEMORY) return undefined;
  return { salt: Buffer.from(kdf['salt'], 'base64'), kdf: params };
}

/**
 * Starts deriving the KEK of the repository's first key object (the one an open tries first)
 * with `password`, so that the open finds it under way. Best effort: anything unexpected
 * (no key, a key that does not parse, an error reading it or the password) starts nothing,
 * and the open reports it as it would have. The password is only asked for when a key
 * object exists, so a plaintext repository never reads it.
 */
export async function startKeyDerivation(backend: StorageBackend, password: () => Promise<string>): Promise<void> {
  try {
    const first = (await backend.list(KEYS_PREFIX)).sort()[0];
    if (first === undefined) return;
    const parsed = kdfOfKeyText((await backend.get(first)).toString('utf8'));
    if (!parsed) return;
    const pw = await password();
    const key = startedKey(pw, parsed.salt, parsed.kdf);
    if (started.has(key)) return;
    const derivation = scrypt(pw, parsed.salt, parsed.kdf);
    derivation.catch(() => {}); // its error, if any, reaches whoever takes it
    started.set(key, derivation);
  } catch {
    // Best effort: the open reads the same objects again and reports what is wrong.
  }
}
