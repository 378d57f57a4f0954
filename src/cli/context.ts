/** What every command shares: the repository option, output, warnings. */
import { openRepository as openRepositoryAt } from '../app/repository.js';
import { UsageError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import { type FromRepoPasswordOptions, type RepoPasswordOptions, existingPassword, fromRepoPassword } from './repo-password.js';

/** A flag's value as a whole number ≥ 0; anything else is a usage error naming the flag. */
export function wholeNumber(v: string, flag: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} needs a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

export interface GlobalOptions extends RepoPasswordOptions {
  repo?: string;
  json?: boolean;
}

export function repoPath(opts: GlobalOptions): string {
  const r = opts.repo ?? process.env['VMBKP_REPO'];
  if (!r) throw new UsageError('no repository given: pass --repo DIR (or s3:URL) or set VMBKP_REPO');
  return r;
}

export async function openRepository(opts: GlobalOptions): Promise<Repository> {
  const password = existingPassword(opts);
  const repo = await openRepositoryAt(repoPath(opts), password ? { password } : {});
  // A password given on the command line for a plaintext repository: either the wrong
  // repository, or one whose config and keys someone replaced before its first backup (with
  // backups in it, Repository.open refuses). The environment's password is not warned
  // about: one environment may serve plaintext and encrypted repositories alike.
  if (!repo.encrypted && opts.repoPasswordFile !== undefined) {
    process.stderr.write(`vmbkp: warning: repository ${repo.location} is not encrypted, yet a repository password was given: its backups are stored in plaintext\n`);
  }
  return repo;
}

/** The repository a copy reads (`copy`, `init --from-repo`): --from-repo, else VMBKP_FROM_REPO. */
export interface FromRepoOptions extends FromRepoPasswordOptions {
  fromRepo?: string;
}

export function fromRepoPath(opts: FromRepoOptions): string {
  const r = opts.fromRepo ?? process.env['VMBKP_FROM_REPO'];
  if (!r) throw new UsageError('no source repository given: pass --from-repo DIR (or s3:URL) or set VMBKP_FROM_REPO');
  return r;
}

/** Opens the source of a copy with its own password (see fromRepoPassword). */
export async function openSourceRepository(opts: FromRepoOptions): Promise<Repository> {
  const location = fromRepoPath(opts);
  const repo = await openRepositoryAt(location, { password: fromRepoPassword(opts, location) });
  if (!repo.encrypted && opts.fromRepoPasswordFile !== undefined) {
    process.stderr.write(`vmbkp: warning: source repository ${repo.location} is not encrypted, yet a password was given for it (--from-repo-password-file)\n`);
  }
  return repo;
}

export class Output {
  constructor(readonly json: boolean) {}

  /** Prints the command's result: JSON under --json, else the human text. */
  result(value: unknown, human: string): void {
    process.stdout.write(this.json ? JSON.stringify(value, null, 2) + '\n' : human + (human.endsWith('\n') || human === '' ? '' : '\n'));
  }

  /** Says on stderr how many requests to a remote repository were retried, when any were. */
  retries(repo: Repository): void {
    const c = repo.backend.counters?.();
    if (!c || c.retries === 0) return;
    const causes = Object.entries(c.retriesByCause).map(([cause, n]) => `${cause} ${n}`).join(', ');
    process.stderr.write(`vmbkp: ${c.retries} request${c.retries === 1 ? '' : 's'} to ${repo.location} retried (${causes})\n`);
  }

  warn(message: string): void {
    process.stderr.write(`vmbkp: warning: ${message}\n`);
  }
}
