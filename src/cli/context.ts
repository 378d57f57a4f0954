/**
 * What every command shares: the config file, the repository option, output, warnings.
 * The app layer is imported when a command first needs it, not when the CLI starts: every
 * command registers from this module, and `--help` or a usage error should not load the
 * repository, the config parser and their dependencies.
 */
import { UsageError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import type { LoadedConfig } from '../app/config-file.js';
import type { RepositoryPasswordSource } from '../app/repository-password.js';
import type { RepositorySettings } from '../app/settings.js';
import { bytes } from './format.js';
import * as log from './log.js';
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

/** --config, set once per run by main (a global option, given before or after the command). */
let configFlag: string | undefined;
let config: Promise<LoadedConfig> | undefined;

export function setConfigFlag(file: string | undefined): void {
  configFlag = file;
  config = undefined;
}

/** The config file in effect (read once per run). */
export function loadedConfig(): Promise<LoadedConfig> {
  config ??= import('../app/config-file.js').then(({ loadConfig }) => loadConfig(configFlag));
  return config;
}

/** The repository a command works on: --repo, VMBKP_REPO or defaults.repository, a profile's or a path. */
export async function repoSettings(opts: GlobalOptions): Promise<RepositorySettings> {
  const { repositorySettings } = await import('../app/settings.js');
  const r = repositorySettings(await loadedConfig(), { repo: opts.repo, passwordFile: opts.repoPasswordFile });
  if (!r) throw new UsageError('no repository given: pass --repo DIR (or s3:URL, or the name of a repository in the config file), set VMBKP_REPO, or set defaults.repository in the config file');
  return r;
}

export async function repoPath(opts: GlobalOptions): Promise<string> {
  return (await repoSettings(opts)).location.value;
}

/** The password of the repository `opts` names (init: of the new one), from its sources or a prompt. */
export async function repoPasswordSource(opts: GlobalOptions): Promise<RepositoryPasswordSource | undefined> {
  return (await repoSettings(opts)).password;
}

export async function openRepository(opts: GlobalOptions): Promise<Repository> {
  const settings = await repoSettings(opts);
  const password = once(existingPassword(settings.password));
  // A password from a file, the environment or a command (never a prompt) lets the key
  // derivation start now, while the repository's modules load.
  if (settings.password && password) (await import('../app/repository-start.js')).startRepositoryKeyDerivation(settings.location.value, password);
  const { openRepository: openRepositoryAt } = await import('../app/repository.js');
  const repo = await openRepositoryAt(settings.location.value, password ? { password } : {});
  // A password given on the command line for a plaintext repository: either the wrong
  // repository, or one whose config and keys someone replaced before its first backup (with
  // backups in it, Repository.open refuses). The environment's password is not warned
  // about: one environment may serve plaintext and encrypted repositories alike.
  if (!repo.encrypted && opts.repoPasswordFile !== undefined) {
    log.warn(`repository ${repo.location} is not encrypted, yet a repository password was given: its backups are stored in plaintext`);
  }
  log.step(`opened repository ${repo.location} (${repo.encrypted ? 'encrypted' : 'plaintext'}, chunk size ${bytes(repo.config.chunkSize)})`);
  return repo;
}

/** `f` called at most once: its promise is shared (a password command runs once). */
function once<T>(f: (() => Promise<T>) | undefined): (() => Promise<T>) | undefined {
  if (!f) return undefined;
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

/** The repository a copy reads (`copy`, `init --from-repo`): --from-repo, else VMBKP_FROM_REPO; a profile's or a path. */
export interface FromRepoOptions extends FromRepoPasswordOptions {
  fromRepo?: string;
}

async function fromRepoSettings(opts: FromRepoOptions): Promise<RepositorySettings> {
  const { repositorySettings } = await import('../app/settings.js');
  const r = repositorySettings(await loadedConfig(), { repo: opts.fromRepo, passwordFile: opts.fromRepoPasswordFile }, 'VMBKP_FROM_REPO');
  if (!r) throw new UsageError('no source repository given: pass --from-repo DIR (or s3:URL, or the name of a repository in the config file) or set VMBKP_FROM_REPO');
  return r;
}

export async function fromRepoPath(opts: FromRepoOptions): Promise<string> {
  return (await fromRepoSettings(opts)).location.value;
}

/** Opens the source of a copy with its own password (see fromRepoPassword). */
export async function openSourceRepository(opts: FromRepoOptions): Promise<Repository> {
  const settings = await fromRepoSettings(opts);
  const location = settings.location.value;
  const { openRepository: openRepositoryAt } = await import('../app/repository.js');
  const repo = await openRepositoryAt(location, { password: fromRepoPassword(settings.password, location) });
  if (!repo.encrypted && opts.fromRepoPasswordFile !== undefined) {
    log.warn(`source repository ${repo.location} is not encrypted, yet a password was given for it (--from-repo-password-file)`);
  }
  log.step(`opened source repository ${repo.location} (${repo.encrypted ? 'encrypted' : 'plaintext'}, chunk size ${bytes(repo.config.chunkSize)})`);
  return repo;
}

/**
 * Commands whose human result only reports what they did: under --quiet it is not printed
 * (a cron job stays silent unless something fails); --json, a dry run and the commands that
 * exist to show something (list, key list, …) print theirs whatever the verbosity.
 */
const REPORTS = new Set(['init', 'backup', 'restore', 'copy', 'prune', 'gc', 'unlock', 'run', 'key add', 'key remove', 'key passwd', 'key export']);
let reportOnly = false;

/** Set once the command is known (main.ts): its path ("key add") and whether it is a dry run. */
export function setCommand(path: string, dryRun: boolean): void {
  reportOnly = REPORTS.has(path) && !dryRun;
}

export class Output {
  constructor(readonly json: boolean) {}

  /** Prints the command's result: JSON under --json, else the human text (unless --quiet and only a report). */
  result(value: unknown, human: string): void {
    if (!this.json && reportOnly && log.getVerbosity() === 'quiet') return;
    process.stdout.write(this.json ? JSON.stringify(value, null, 2) + '\n' : human + (human.endsWith('\n') || human === '' ? '' : '\n'));
  }

  /** Says on stderr how many requests to a remote repository were retried, when any were. */
  retries(repo: Repository): void {
    const c = repo.backend.counters?.();
    if (!c || c.retries === 0) return;
    const causes = Object.entries(c.retriesByCause).map(([cause, n]) => `${cause} ${n}`).join(', ');
    log.notice(`${c.retries} request${c.retries === 1 ? '' : 's'} to ${repo.location} retried (${causes})`);
  }

  warn(message: string): void {
    log.warn(message);
  }

  /** A step of the run, shown under --verbose. */
  step(message: string): void {
    log.step(message);
  }
}
