/**
 * The repositories the server config names. Each use opens the repository afresh (its
 * config, keys and index as they are now): a CLI run on the same host may have written to
 * it since, and the repository's own locks (src/repository/lock.ts) order the two, as they
 * order two CLI runs. The password is read from its file at each open, never kept in a
 * response or a log.
 */
import path from 'node:path';
import { openRepository } from '../app/repository.js';
import { readRepositoryPassword } from '../app/repository-password.js';
import { NotFoundError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import type { ServerRepository } from './config.js';

export class RepositoryRegistry {
  constructor(private readonly repos: readonly ServerRepository[], private readonly configFile: string) {}

  list(): readonly ServerRepository[] {
    return this.repos;
  }

  get(name: string): ServerRepository {
    const r = this.repos.find((x) => x.name === name);
    if (!r) throw new NotFoundError(`repository ${name} is not in the server config ${this.configFile} (it names ${this.repos.map((x) => x.name).join(', ') || 'none'})`);
    return r;
  }

  /** The configured repository at `location` (a recipe's), if any: its name labels jobs and metrics. */
  byLocation(location: string): ServerRepository | undefined {
    const norm = (p: string) => (/^s3:/.test(p) ? p.replace(/\/+$/, '') : path.resolve(p));
    return this.repos.find((r) => norm(r.repo) === norm(location));
  }

  /** The password source of a configured repository, for a recipe that names none of its own. */
  password(r: ServerRepository): (() => Promise<string>) | undefined {
    const file = r.passwordFile;
    if (file === undefined) return undefined;
    return () => readRepositoryPassword({ kind: 'file', file, what: `passwordFile of repository ${r.name} in ${this.configFile}` });
  }

  async open(name: string): Promise<Repository> {
    const r = this.get(name);
    const password = this.password(r);
    return openRepository(r.repo, password ? { password } : {});
  }
}
