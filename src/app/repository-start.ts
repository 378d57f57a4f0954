/**
 * What a command may start before the repository's modules have loaded, so that it overlaps
 * their loading: the chunk workers of a backup, and the key derivation of a local encrypted
 * repository (scrypt, on libuv's thread pool). Imports only light modules, for that reason.
 */
import { startKeyDerivation } from '../repository/kek.js';
import { LocalBackend } from '../storage/local.js';
import { isS3Location } from '../storage/s3-location.js';

export { startWorkersEarly } from '../repository/chunk-pool.js';

/**
 * Starts deriving the key of the repository at `location` (best effort; see kek.ts). Only for
 * a local directory: on S3 the SDK must load before any object can be read.
 */
export function startRepositoryKeyDerivation(location: string, password: () => Promise<string>): void {
  if (isS3Location(location)) return;
  void startKeyDerivation(new LocalBackend(location), password);
}
