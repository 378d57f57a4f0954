/**
 * The cryptography of an encrypted repository, in one place: the master key and the keys
 * derived from it, the AEAD framing every sealed blob and object uses, and the keyed MAC
 * that names chunks and sets. docs/format.md ("Encryption") specifies the same bytes.
 *
 *   sealed = nonce[12] | AES-256-GCM ciphertext | tag[16]     (associated data given by the caller)
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { aead } from './aead.js';

export const CIPHER = 'aes-256-gcm';
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
/** Bytes a sealed blob or object has beyond its plain (or compressed) content. */
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;
export const KEY_LENGTH = 32;

/** What a key object wraps: 64 random bytes, an encryption key and a MAC key. */
export interface MasterKey {
  readonly encryption: Buffer;
  readonly mac: Buffer;
}

/**
 * The keys the repository uses, derived from the master key (HKDF-SHA256, no salt, one
 * `info` per purpose) so that no key serves two purposes: a chunk id can never equal a set's
 * directory name or the config's authenticator.
 */
export interface RepositoryKeys {
  /** AES-256-GCM key of every blob and metadata object. */
  readonly data: Buffer;
  /** HMAC-SHA256 key of blob ids (chunks and index pieces). */
  readonly id: Buffer;
  /** HMAC-SHA256 key of set directory names. */
  readonly names: Buffer;
  /** HMAC-SHA256 key of the config's authenticator. */
  readonly config: Buffer;
}

export function newMasterKey(): MasterKey {
  return { encryption: randomBytes(KEY_LENGTH), mac: randomBytes(KEY_LENGTH) };
}

function derive(from: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', from, Buffer.alloc(0), info, KEY_LENGTH));
}

export function deriveKeys(master: MasterKey): RepositoryKeys {
  return {
    data: derive(master.encryption, 'vmbkp data'),
    id: derive(master.mac, 'vmbkp blob id'),
    names: derive(master.mac, 'vmbkp set name'),
    config: derive(master.mac, 'vmbkp config'),
  };
}

export function hmac(key: Buffer, data: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * Seals `plain` into `out` at `at` (out needs plain.length + SEAL_OVERHEAD bytes there);
 * `plain` may itself lie in `out` at at + NONCE_LENGTH (encrypted in place). Returns the
 * sealed length.
 */
export function sealInto(key: Uint8Array, ad: Uint8Array, plain: Uint8Array, out: Uint8Array, at = 0): number {
  const nonce = out.subarray(at, at + NONCE_LENGTH);
  nonce.set(randomBytes(NONCE_LENGTH));
  const body = out.subarray(at + NONCE_LENGTH, at + NONCE_LENGTH + plain.length);
  aead.seal(key, nonce, ad, plain, body, out.subarray(at + NONCE_LENGTH + plain.length, at + SEAL_OVERHEAD + plain.length));
  return plain.length + SEAL_OVERHEAD;
}

export function seal(key: Uint8Array, ad: Uint8Array, plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(plain.length + SEAL_OVERHEAD);
  sealInto(key, ad, plain, out);
  return out;
}

/** The plain length of sealed bytes. */
export function openedLength(sealed: Uint8Array): number {
  if (sealed.length < SEAL_OVERHEAD) throw new Error(`sealed data of ${sealed.length} bytes is shorter than nonce and tag`);
  return sealed.length - SEAL_OVERHEAD;
}

/**
 * Opens sealed bytes into `out` (exactly openedLength(sealed) long, not overlapping them);
 * throws when they fail authentication (tampered with, or sealed for other associated data).
 */
export function openInto(key: Uint8Array, ad: Uint8Array, sealed: Uint8Array, out: Uint8Array): void {
  const n = openedLength(sealed);
  if (out.length !== n) throw new RangeError(`opening ${sealed.length} sealed bytes needs ${n} bytes of room, got ${out.length}`);
  const body = sealed.subarray(NONCE_LENGTH, NONCE_LENGTH + n);
  if (!aead.open(key, sealed.subarray(0, NONCE_LENGTH), ad, body, out, sealed.subarray(NONCE_LENGTH + n))) {
    throw new Error('authentication failed (tampered with, or not the object this place names)');
  }
}

/** Opens a sealed buffer into a new one; throws as openInto. */
export function open(key: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(openedLength(sealed));
  openInto(key, ad, sealed, out);
  return out;
}

/** The associated data of a metadata object: a fixed prefix and what the object is (its name, or its kind when named by content). */
export function objectAd(what: string): Buffer {
  return Buffer.from(`vmbkp object\0${what}`, 'utf8');
}
