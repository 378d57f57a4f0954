/** Repositories as the front ends name them: a local directory today, whatever backend it names later. */
import { Repository } from '../repository/repository.js';
import { LocalBackend } from '../storage/local.js';

export function openRepository(location: string): Promise<Repository> {
  return Repository.open(new LocalBackend(location));
}

export function initRepository(location: string, chunkSize: number | undefined): Promise<Repository> {
  return Repository.init(new LocalBackend(location), chunkSize);
}
