/** `vmbkp run RECIPE.yaml [--dry-run]`: a whole batch of VM backups or restores from one recipe file. */
import { type Command, Option } from 'commander';
import { UsageError } from '../../errors.js';
import { Output, loadedConfig } from '../context.js';
import { type RepoPasswordOptions, commandLinePasswordSource, existingPassword } from '../repo-password.js';

interface RunOptions extends RepoPasswordOptions {
  dryRun?: boolean;
  json?: boolean;
  repo?: string;
}

export function register(program: Command): void {
  program.command('run')
    .description('run a recipe: back up (or restore) every VM it names, within its limits')
    .argument('<recipe>', 'recipe file (YAML; see schema/recipe.schema.json)')
    .option('--dry-run', 'show what would be done (for backups: each disk\'s mode), changing nothing')
    // Not in --help: the recipe names the repository; given anyway, it is refused with that reason.
    .addOption(new Option('--repo <dir>').hideHelp())
    .action(async (recipePath: string, opts: RunOptions) => {
      const { readRepositoryPassword, recipePasswordSource } = await import('../../app/repository-password.js');
      const { loadRecipe } = await import('../../app/run-recipe.js');
      const { resolveRecipeProfiles } = await import('../../app/recipe-profiles.js');
      const { runBackupRecipe } = await import('../run-backup.js');
      const { runRestoreRecipe } = await import('../run-restore.js');
      const out = new Output(!!opts.json);
      if (opts.repo !== undefined) throw new UsageError('run takes the repository from the recipe, not from --repo');
      // Profile names (connection: NAME, a repository that is a bare word) resolved against the config file.
      const { recipe, login, repositoryPassword, copyPassword: copyProfilePassword } = resolveRecipeProfiles(await loadRecipe(recipePath), recipePath, await loadedConfig());
      // The recipe's own password source, else its profile's, else the one any command uses; asked only for an encrypted repository.
      const source = recipePasswordSource(recipePath, recipe.repository) ?? repositoryPassword;
      const password = source ? () => readRepositoryPassword(source) : existingPassword(commandLinePasswordSource(opts)) ?? (() => Promise.reject(new UsageError(
        `repository ${recipe.repository.path} is encrypted: give its password in recipe ${recipePath} (repository.passwordFile, passwordEnv or passwordCommand), `
        + 'or with --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND')));
      // The copy's destination: its own source in the recipe (copy.to), else its profile's, else the same ones.
      const copyTo = recipe.kind === 'backup' ? recipe.copy?.to.path : undefined;
      const copyPassword = copyTo === undefined ? undefined : existingPassword(copyProfilePassword ?? commandLinePasswordSource(opts)) ?? (() => Promise.reject(new UsageError(
        `repository ${copyTo} is encrypted: give its password in recipe ${recipePath} (copy.to.passwordFile, passwordEnv or passwordCommand), `
        + 'or with --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND')));
      if (recipe.kind === 'backup') await runBackupRecipe(recipePath, recipe, !!opts.dryRun, out, login, password, copyPassword);
      else await runRestoreRecipe(recipePath, recipe, !!opts.dryRun, out, login, password);
    });
}
