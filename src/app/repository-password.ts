/**
 * Where a repository's password comes from: a file, or a command that prints it (a secret
 * store). Never an argument: arguments are visible to every user of the host. Messages
 * name the source, never the password.
 */
import type { RecipeRepository } from '../recipe/index.js';
import { readPasswordEnv, readPasswordFile } from '../recipe/password.js';
import { type SecretCommand, runSecretCommand } from './secret-command.js';

export type RepositoryPasswordSource =
  | { readonly kind: 'file'; readonly file: string; readonly what: string }
  | { readonly kind: 'command'; readonly command: SecretCommand; readonly what: string }
  | { readonly kind: 'env'; readonly variable: string; readonly what: string };

export async function readRepositoryPassword(source: RepositoryPasswordSource, env: Readonly<Record<string, string | undefined>> = process.env): Promise<string> {
  switch (source.kind) {
    case 'file': return readPasswordFile(source.file, `the repository password file ${source.file} (${source.what})`);
    case 'command': return runSecretCommand(source.command, `the repository password command (${source.what})`, 'repository password');
    case 'env': return readPasswordEnv(source.variable, source.what, env);
  }
}

/**
 * Which repository's variables: the one a command works on (`--repo`: VMBKP_REPO_PASSWORD_*),
 * or the source of a copy (`--from-repo`: VMBKP_FROM_REPO_PASSWORD_*).
 */
export type PasswordVariables = 'VMBKP_REPO' | 'VMBKP_FROM_REPO';

/**
 * The source the environment names: VMBKP_REPO_PASSWORD_FILE, else
 * VMBKP_REPO_PASSWORD_COMMAND (for the source of a copy, VMBKP_FROM_REPO_PASSWORD_FILE and
 * _COMMAND); undefined when neither is set.
 */
export function environmentPasswordSource(env: Readonly<Record<string, string | undefined>> = process.env,
  prefix: PasswordVariables = 'VMBKP_REPO'): RepositoryPasswordSource | undefined {
  const file = env[`${prefix}_PASSWORD_FILE`];
  if (file) return { kind: 'file', file, what: `${prefix}_PASSWORD_FILE` };
  const command = env[`${prefix}_PASSWORD_COMMAND`];
  if (command) return { kind: 'command', command, what: `${prefix}_PASSWORD_COMMAND` };
  return undefined;
}

/**
 * The source a recipe's repository mapping names (passwordFile, passwordEnv or
 * passwordCommand); undefined when it names none. `field` is where the mapping is in the
 * recipe, for messages: `repository`, or `copy.to`.
 */
export function recipePasswordSource(recipePath: string, repository: RecipeRepository, field = 'repository'): RepositoryPasswordSource | undefined {
  const what = (key: string) => `${field}.${key} of recipe ${recipePath}`;
  if (repository.passwordFile !== undefined) return { kind: 'file', file: repository.passwordFile, what: what('passwordFile') };
  if (repository.passwordEnv !== undefined) return { kind: 'env', variable: repository.passwordEnv, what: what('passwordEnv') };
  if (repository.passwordCommand !== undefined) return { kind: 'command', command: repository.passwordCommand, what: what('passwordCommand') };
  return undefined;
}
