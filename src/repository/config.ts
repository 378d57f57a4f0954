/**
 * The repository's `config` object: identity, format version, chunk size and, in an
 * encrypted repository, which cipher it uses and an authenticator that proves the config
 * was written by a holder of the master key. It stays readable without a key (a reader
 * must learn that a password is needed), and holds nothing secret.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError, RepositoryDamagedError, RepositoryNotFoundError, UnsupportedFormatError, InputError } from '../errors.js';
import type { ObjectLockPolicy, StorageBackend } from '../storage/backend.js';
import { CIPHER, type RepositoryKeys, hmac } from './encryption.js';
import { CONFIG, ENCRYPTED_FORMAT_VERSION, FORMAT_NAME, PLAIN_FORMAT_VERSION } from './layout.js';

export const ID_MAC = 'hmac-sha256';

/** Measured in docs/benchmarks.md ("Chunk size"): the best trade of incremental growth, dedup and index size. */
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
/** Digests per index piece: 128 KiB pieces, so an unchanged disk's index dedupes piece by piece. */
export const INDEX_PIECE_ENTRIES = 4096;

const ConfigSchema = z.object({
  format: z.literal(FORMAT_NAME),
  version: z.number().int(),
  id: z.string().uuid(),
  created: z.string(),
  chunkSize: z.number().int(),
  indexPieceEntries: z.number().int(),
  /** Object lock of an S3 repository: what every object but locks is written with. */
  objectLock: z.object({
    mode: z.enum(['governance', 'compliance']),
    days: z.number().int().min(1),
  }).strict().optional(),
  encryption: z.object({
    cipher: z.literal(CIPHER),
    ids: z.literal(ID_MAC),
    /** Hex HMAC-SHA256 of the other fields (authenticatedConfig) under the config key. */
    authenticator: z.string().regex(/^[0-9a-f]{64}$/),
  }).strict().optional(),
}).strict().refine((c) => (c.version === ENCRYPTED_FORMAT_VERSION) === (c.encryption !== undefined), {
  message: `version ${ENCRYPTED_FORMAT_VERSION} (and only it) has encryption`, path: ['encryption'],
});
export type RepositoryConfig = z.infer<typeof ConfigSchema>;

/** A page: smaller chunks would cost more index than they save. */
const MIN_CHUNK_SIZE = 4096;
/** The largest chunk a pack entry, a worker slot and a restore read are sized for. */
const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

/** A new config; with `keys`, an encrypted repository's (version 2, authenticated). */
export function newConfig(chunkSize: number = DEFAULT_CHUNK_SIZE, keys?: RepositoryKeys, objectLock?: ObjectLockPolicy): RepositoryConfig {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new InputError(`chunk size ${chunkSize} is invalid: use a power of two from 4 KiB to 16 MiB`);
  }
  const config: RepositoryConfig = {
    format: FORMAT_NAME,
    version: keys ? ENCRYPTED_FORMAT_VERSION : PLAIN_FORMAT_VERSION,
    id: randomUUID(),
    created: new Date().toISOString(),
    chunkSize,
    indexPieceEntries: INDEX_PIECE_ENTRIES,
    ...(objectLock ? { objectLock: { mode: objectLock.mode, days: objectLock.days } } : {}),
  };
  if (!keys) return config;
  return { ...config, encryption: { cipher: CIPHER, ids: ID_MAC, authenticator: configAuthenticator(config, keys) } };
}

/**
 * The bytes the authenticator covers: the compact JSON array of the fields, in this order;
 * the object lock's mode and days follow when there is one.
 */
function authenticatedConfig(c: RepositoryConfig): string {
  const fields: unknown[] = [c.format, c.version, c.id, c.created, c.chunkSize, c.indexPieceEntries, CIPHER, ID_MAC];
  if (c.objectLock) fields.push(c.objectLock.mode, c.objectLock.days);
  return JSON.stringify(fields);
}

function configAuthenticator(c: RepositoryConfig, keys: RepositoryKeys): string {
  return hmac(keys.config, authenticatedConfig(c)).toString('hex');
}

/** Checks an encrypted repository's config against the keys its master key gives. */
export function checkConfigAuthenticator(c: RepositoryConfig, keys: RepositoryKeys, location: string): void {
  if (c.encryption?.authenticator !== configAuthenticator(c, keys)) {
    throw new RepositoryDamagedError(`reading the config of repository ${location} failed: its authenticator does not match (the config was changed by someone without the key)`);
  }
}

export async function readConfig(backend: StorageBackend): Promise<RepositoryConfig> {
  let raw: Buffer;
  try {
    raw = await backend.get(CONFIG);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new RepositoryNotFoundError(`no vmbkp repository at ${backend.location}: it has no config (create one with: vmbkp init --repo ${backend.location})`, { cause: err });
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new RepositoryDamagedError(`reading the config of repository ${backend.location} failed: not valid JSON`, { cause: err });
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version !== PLAIN_FORMAT_VERSION && version !== ENCRYPTED_FORMAT_VERSION) {
    throw new UnsupportedFormatError(`repository ${backend.location} has format version ${version}; this vmbkp reads versions ${PLAIN_FORMAT_VERSION} and ${ENCRYPTED_FORMAT_VERSION} only`);
  }
  const parsed = ConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`reading the config of repository ${backend.location} failed: ${issue?.path.join('.') || 'config'}: ${issue?.message}`);
  }
  return parsed.data;
}

export function encodeConfig(config: RepositoryConfig): Buffer {
  return Buffer.from(JSON.stringify(config, null, 2) + '\n');
}
