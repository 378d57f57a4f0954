/** Repositories as the front ends name them: a local directory today, whatever backend it names later. */
import { type InitOptions, type OpenOptions, Repository } from '../repository/repository.js';
import type { StorageBackend } from '../storage/backend.js';
import { LocalBackend } from '../storage/local.js';

/** The storage a location names. */
export function repositoryBackend(location: string): StorageBackend {
  return new LocalBackend(location);
}

/** `options` says how to get the password of an encrypted repository: every front end must decide. */
export function openRepository(location: string, options: OpenOptions): Promise<Repository> {
  return Repository.open(repositoryBackend(location), options);
}

export function initRepository(location: string, options: InitOptions = {}): Promise<Repository> {
  return Repository.init(repositoryBackend(location), options);
}
