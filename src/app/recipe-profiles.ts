/**
 * A recipe's references to the config file: `connection: NAME` (a vCenter profile) and a
 * repository or `copy.to` that is a bare word (a repository profile, by the rule of
 * isProfileName). The profile is taken as written: environment variables and flags that
 * override profiles on the command line do not change what a recipe says.
 */
import type { Recipe } from '../recipe/index.js';
import type { LoadedConfig } from './config-file.js';
import { isProfileName } from './config-schema.js';
import type { RepositoryPasswordSource } from './repository-password.js';
import { repositorySettings, vcenterLoginOf, vcenterSettings } from './settings.js';
import type { VcenterLogin } from './vcenter.js';

export interface RecipeWithProfiles<R extends Recipe> {
  /** The recipe with its repository paths (repository, copy.to) resolved. */
  readonly recipe: R;
  readonly login: VcenterLogin;
  /** The password sources of the profiles the recipe's repository and copy.to name; the recipe's own win over them. */
  readonly repositoryPassword?: RepositoryPasswordSource;
  readonly copyPassword?: RepositoryPasswordSource;
}

function repositoryProfile(config: LoadedConfig, path: string, field: string, recipePath: string): { path: string; password?: RepositoryPasswordSource } {
  if (!isProfileName(path)) return { path };
  // No environment: VMBKP_REPO and its password variables are the command line's, not the recipe's.
  const s = repositorySettings(config, { repo: path, given: `${field} of recipe ${recipePath}` }, 'VMBKP_REPO', {})!;
  return { path: s.location.value, ...(s.password ? { password: { ...s.password, what: `${s.password.what}, which the recipe's ${field} names` } } : {}) };
}

/** `recipePath` names the recipe in messages. */
export function resolveRecipeProfiles<R extends Recipe>(recipe: R, recipePath: string, config: LoadedConfig): RecipeWithProfiles<R> {
  const c = recipe.connection;
  const login = typeof c === 'string' ? vcenterLoginOf(vcenterSettings(config, { vcenter: c, given: `connection of recipe ${recipePath}` }, undefined)!) : c;
  const repository = repositoryProfile(config, recipe.repository.path, 'repository', recipePath);
  const copy = recipe.kind === 'backup' && recipe.copy ? repositoryProfile(config, recipe.copy.to.path, 'copy.to', recipePath) : undefined;
  const resolved = {
    ...recipe,
    repository: { ...recipe.repository, path: repository.path },
    ...(recipe.kind === 'backup' && recipe.copy && copy ? { copy: { ...recipe.copy, to: { ...recipe.copy.to, path: copy.path } } } : {}),
  };
  return {
    recipe: resolved, login,
    ...(repository.password ? { repositoryPassword: repository.password } : {}),
    ...(copy?.password ? { copyPassword: copy.password } : {}),
  };
}
