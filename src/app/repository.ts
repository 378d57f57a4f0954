/** Repositories as the front ends name them: a local directory today, whatever backend it names later. */
import { type InitOptions, type OpenOptions, Repository } from '../repository/repository.js';
import { LocalBackend } from '../storage/local.js';

export function openRepository(location: string, options: OpenOptions = {}): Promise<Repository> {
  return Repository.open(new LocalBackend(location), options);
}

export function initRepository(location: string, options: InitOptions = {}): Promise<Repository> {
  return Repository.init(new LocalBackend(location), options);
}
