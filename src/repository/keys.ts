/**
 * Key objects: the master key of an encrypted repository, wrapped by a key derived from a
 * password with scrypt (kek.ts). Several key objects may wrap the same master key: one per
 * person or secret store. A key object is named by the SHA-256 of its content, so a damaged
 * one is found without its password.
 *
 *   keys/<sha256 of content>:  JSON, see docs/format.md ("Key objects")
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError, RepositoryDamagedError, UsageError, WrongPasswordError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { sha256 } from './digest.js';
import { CIPHER, KEY_LENGTH, type MasterKey, open, seal } from './encryption.js';
import { type KdfParams, MAX_KDF_MEMORY, MAX_P, MAX_R, deriveKek, kdfMemory } from './kek.js';
import { KEYS_PREFIX, keyName } from './layout.js';
import { putContentAddressed } from './write-once.js';

export { type KdfParams, kdfMemory };

/**
 * 64 MiB (Proxmox Backup Server's key files use the same) and about a quarter of a second
 * on the machines this runs on: what a password guess costs an attacker, and every command
 * on an encrypted repository costs us once.
 */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 16, r: 8, p: 1 };

/** The scrypt parameters that use `mib` MiB with r = 8 (N = mib × 1024). */
export function kdfForMemory(mib: number): KdfParams {
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096 || (mib & (mib - 1)) !== 0) {
    throw new UsageError(`key derivation memory ${mib} MiB is invalid: use a power of two from 1 to 4096`);
  }
  return { N: mib * 1024, r: 8, p: 1 };
}

const KeyRecordSchema = z.object({
  version: z.literal(1),
  repository: z.string(),
  created: z.string(),
  label: z.string().optional(),
  kdf: z.object({
    name: z.literal('scrypt'),
    N: z.number().int().min(2).refine((n) => (n & (n - 1)) === 0, 'not a power of two'),
    r: z.number().int().min(1).max(MAX_R),
    p: z.number().int().min(1).max(MAX_P),
    salt: z.string(),
  }).strict().refine((k) => kdfMemory(k) <= MAX_KDF_MEMORY, 'asks for more memory than a key may'),
  cipher: z.literal(CIPHER),
  wrapped: z.string(),
}).strict();
export type KeyRecord = z.infer<typeof KeyRecordSchema>;

export interface StoredKey {
  readonly name: string;
  /** The SHA-256 in its name; users name a key by a prefix of it. */
  readonly id: string;
  readonly record: KeyRecord;
}

function wrapAd(repository: string): Buffer {
  return Buffer.from(`vmbkp key\0${repository}`, 'utf8');
}

export function parseKey(name: string, stored: Buffer): StoredKey {
  const id = name.slice(KEYS_PREFIX.length);
  const damaged = (why: string) => new RepositoryDamagedError(`key ${name} is damaged: ${why}`);
  if (sha256(stored).toString('hex') !== id) throw damaged('content does not match its name');
  let json: unknown;
  try {
    json = JSON.parse(stored.toString('utf8'));
  } catch {
    throw damaged('not valid JSON');
  }
  const parsed = KeyRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw damaged(`${issue?.path.join('.') || 'key'}: ${issue?.message}`);
  }
  return { name, id, record: parsed.data };
}

/** Every key object; a damaged one is handed to `onDamaged` (or thrown without it). */
export async function listKeys(backend: StorageBackend, onDamaged?: (err: RepositoryDamagedError) => void): Promise<StoredKey[]> {
  const keys: StoredKey[] = [];
  for (const name of (await backend.list(KEYS_PREFIX)).sort()) {
    let stored: Buffer;
    try {
      stored = await backend.get(name);
    } catch (err) {
      if (err instanceof NotFoundError) continue; // removed meanwhile
      throw err;
    }
    try {
      keys.push(parseKey(name, stored));
    } catch (err) {
      if (onDamaged && err instanceof RepositoryDamagedError) onDamaged(err);
      else throw err;
    }
  }
  return keys;
}

/** Wraps `master` with `password` in a new key object. */
export async function writeKey(backend: StorageBackend, repository: string, master: MasterKey, password: string,
  kdf: KdfParams = DEFAULT_KDF, label?: string): Promise<StoredKey> {
  const salt = randomBytes(32);
  const kek = await deriveKek(password, salt, kdf);
  const wrapped = seal(kek, wrapAd(repository), Buffer.concat([master.encryption, master.mac]));
  const record: KeyRecord = {
    version: 1, repository, created: new Date().toISOString(), ...(label !== undefined ? { label } : {}),
    kdf: { name: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, salt: salt.toString('base64') },
    cipher: CIPHER, wrapped: wrapped.toString('base64'),
  };
  const stored = Buffer.from(JSON.stringify(record, null, 1) + '\n');
  const id = sha256(stored).toString('hex');
  await putContentAddressed(backend, keyName(id), id, stored);
  return { name: keyName(id), id, record };
}

/** The master key wrapped in `key` when `password` opens it, else undefined. */
export async function unwrapKey(key: StoredKey, password: string): Promise<MasterKey | undefined> {
  const { kdf } = key.record;
  const kek = await deriveKek(password, Buffer.from(kdf.salt, 'base64'), kdf);
  let plain: Buffer;
  try {
    plain = open(kek, wrapAd(key.record.repository), Buffer.from(key.record.wrapped, 'base64'));
  } catch {
    return undefined;
  }
  if (plain.length !== 2 * KEY_LENGTH) throw new RepositoryDamagedError(`key ${key.name} is damaged: it wraps ${plain.length} bytes, a master key is ${2 * KEY_LENGTH}`);
  return { encryption: plain.subarray(0, KEY_LENGTH), mac: plain.subarray(KEY_LENGTH) };
}

/**
 * Tries every key object of the repository with `password`; returns the master key and the
 * key that opened it. Throws WrongPasswordError when none does.
 */
export async function unlockMasterKey(backend: StorageBackend, repository: string, password: string): Promise<{ master: MasterKey; key: StoredKey }> {
  const damaged: RepositoryDamagedError[] = [];
  const keys = (await listKeys(backend, (err) => damaged.push(err))).filter((k) => k.record.repository === repository);
  if (keys.length === 0) {
    const why = damaged.length > 0 ? damaged.map((e) => e.message).join('; ') : 'keys/ is empty';
    throw new RepositoryDamagedError(`repository ${backend.location} is encrypted but has no readable key object (${why}); restore access with: vmbkp key add --master-key-file FILE`);
  }
  for (const key of keys) {
    const master = await unwrapKey(key, password);
    if (master) return { master, key };
  }
  throw new WrongPasswordError(`opening repository ${backend.location} failed: the password opens none of its ${keys.length} key${keys.length === 1 ? '' : 's'}`);
}

/** A recovery copy of the master key: enough to add a new password key when every password is lost. */
const RecoveryFileSchema = z.object({
  format: z.literal('vmbkp-master-key'),
  repository: z.string(),
  encryption: z.string(),
  mac: z.string(),
}).strict();

export function encodeRecoveryFile(repository: string, master: MasterKey): Buffer {
  return Buffer.from(JSON.stringify({ format: 'vmbkp-master-key', repository, encryption: master.encryption.toString('base64'), mac: master.mac.toString('base64') }, null, 1) + '\n');
}

export function decodeRecoveryFile(raw: Buffer, file: string): { repository: string; master: MasterKey } {
  let parsed;
  try {
    parsed = RecoveryFileSchema.safeParse(JSON.parse(raw.toString('utf8')));
  } catch {
    parsed = undefined;
  }
  const encryption = parsed?.success ? Buffer.from(parsed.data.encryption, 'base64') : undefined;
  const mac = parsed?.success ? Buffer.from(parsed.data.mac, 'base64') : undefined;
  if (!parsed?.success || encryption?.length !== KEY_LENGTH || mac?.length !== KEY_LENGTH) {
    throw new UsageError(`master key file ${file} is not a vmbkp master key (written by: vmbkp key export)`);
  }
  return { repository: parsed.data.repository, master: { encryption, mac } };
}
