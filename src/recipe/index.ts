/** Recipes: `vmbkp run RECIPE.yaml` reads one of these. */
export { type RecipeIssue, type RecipeValidation, issuesMessage, loadRecipe, parseRecipe, recipeIssues, validateRecipe } from './load.js';
export { resolvePassword } from './password.js';
export { parseRate } from './rate.js';
export { type InventoryVm, type SelectedVm, type Selection, type TargetSpec, selectVms } from './select.js';
export { globToRegExp, isGlob } from './glob.js';
export { recipeJsonSchema } from './json-schema.js';
export type {
  BackupPolicy, BackupRecipe, Concurrency, Connection, Hook, Hooks, Recipe, RecipeCopy, RecipeRepository, Report, RestoreItem, RestoreRecipe, Targets,
} from './schema.js';
export { backupRecipeSchema, recipeSchema, restoreRecipeSchema } from './schema.js';
