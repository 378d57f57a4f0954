/** The repository's `config` object: identity, format version and chunk size. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError, RepositoryDamagedError, RepositoryNotFoundError, UnsupportedFormatError, InputError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { CONFIG, FORMAT_NAME, FORMAT_VERSION } from './layout.js';

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
}).strict();
export type RepositoryConfig = z.infer<typeof ConfigSchema>;

/** A page: smaller chunks would cost more index than they save. */
const MIN_CHUNK_SIZE = 4096;
/** The largest chunk a pack entry, a worker slot and a restore read are sized for. */
const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

export function newConfig(chunkSize: number = DEFAULT_CHUNK_SIZE): RepositoryConfig {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new InputError(`chunk size ${chunkSize} is invalid: use a power of two from 4 KiB to 16 MiB`);
  }
  return {
    format: FORMAT_NAME,
    version: FORMAT_VERSION,
    id: randomUUID(),
    created: new Date().toISOString(),
    chunkSize,
    indexPieceEntries: INDEX_PIECE_ENTRIES,
  };
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
  if (typeof version === 'number' && version !== FORMAT_VERSION) {
    throw new UnsupportedFormatError(`repository ${backend.location} has format version ${version}; this vmbkp reads version ${FORMAT_VERSION} only`);
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
