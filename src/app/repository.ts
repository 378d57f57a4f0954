/** Repositories as the front ends name them: a local directory, or `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`. */
import { UsageError } from '../errors.js';
import { type InitOptions, type OpenOptions, Repository } from '../repository/repository.js';
import type { StorageBackend, StorageCounters } from '../storage/backend.js';
import { LocalBackend } from '../storage/local.js';
import { isS3Location } from '../storage/s3-location.js';

/**
 * The storage a location names. S3 credentials come from the SDK's standard chain
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, instance roles); a
 * private CA from VMBKP_S3_CA_FILE (or AWS_CA_BUNDLE, the SDK's own name for it).
 */
export async function repositoryBackend(location: string): Promise<StorageBackend> {
  if (isS3Location(location)) {
    // Loaded here only: the AWS SDK is a quarter of a second of CPU that a local repository does not need.
    const { S3Backend } = await import('../storage/s3.js');
    const caFile = process.env['VMBKP_S3_CA_FILE'] || process.env['AWS_CA_BUNDLE'] || undefined;
    return new S3Backend(location, caFile !== undefined ? { caFile } : {});
  }
  return new LocalBackend(location);
}

/** Chunk workers started before a repository opens, for the backup that follows (see chunk-pool.ts). */
export { startWorkersEarly } from '../repository/chunk-pool.js';

/** `options` says how to get the password of an encrypted repository: every front end must decide. */
export async function openRepository(location: string, options: OpenOptions): Promise<Repository> {
  return Repository.open(await repositoryBackend(location), options);
}

/** Creates the repository, and for S3 the bucket when it is missing (with object lock when the repository has one). */
export async function initRepository(location: string, options: InitOptions = {}): Promise<Repository> {
  const backend = await repositoryBackend(location);
  const { S3Backend } = isS3Location(location) ? await import('../storage/s3.js') : { S3Backend: null };
  if (S3Backend && backend instanceof S3Backend) await backend.createBucket({ objectLock: options.objectLock !== undefined });
  else if (options.objectLock) throw new UsageError(`an object lock needs a repository on S3 object storage (s3:https://HOST/BUCKET), not ${location}`);
  return Repository.init(backend, options);
}

/** A remote repository's counters (retries by cause) for a report; nothing for a local one. */
export function storageReport(repo: Repository): { storage: StorageCounters } | Record<string, never> {
  const counters = repo.backend.counters?.();
  return counters ? { storage: counters } : {};
}
