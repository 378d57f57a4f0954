/**
 * Which retention policy each set of a repository gets for `prune --all`: a backup
 * recipe's policy.retention for the sets of the VMs it names, or one policy for every set.
 * A set that gets none is left alone and reported, never pruned by accident.
 *
 * A repository profile of the config file may carry `retention` (set name or glob → policy):
 * `profilePolicies` makes the `policyFor` of it, asked before the recipe.
 */
import { UsageError } from '../errors.js';
import { setNameForVm } from '../providers/vsphere/backup-vm.js';
import { type BackupRecipe, globToRegExp, isGlob, loadRecipe } from '../recipe/index.js';
import type { Repository } from '../repository/repository.js';
import type { RetentionPolicy } from '../repository/retention.js';

export interface SetPolicy {
  readonly set: string;
  readonly policy: RetentionPolicy;
  /** Where the policy comes from: "--keep-* options", "recipe FILE". */
  readonly from: string;
}

export interface PolicySources {
  /** --keep-* options: every set. */
  readonly options?: RetentionPolicy | undefined;
  /** A backup recipe file: its retention for the sets of the VMs it names. */
  readonly recipe?: string | undefined;
  readonly policyFor?: ((set: string) => SetPolicy | undefined) | undefined;
}

export interface PrunePolicies {
  readonly sets: readonly SetPolicy[];
  /** Sets no source gives a policy: left alone. */
  readonly unmanaged: readonly string[];
}

/** Does a recipe target (a VM name, glob or moref) name the set? Folders name VMs only the vCenter knows: never. */
function recipeCovers(recipe: BackupRecipe, set: string): boolean {
  return recipe.targets.vms.some((pattern) => isGlob(pattern) ? globToRegExp(pattern).test(set) || globToRegExp(setNameForVm(pattern)).test(set)
    : setNameForVm(pattern) === set);
}

/** The retention of a repository profile as `policyFor`: the first key (in file order) that names or globs the set. */
export function profilePolicies(profile: string, retention: Readonly<Record<string, RetentionPolicy>>): (set: string) => SetPolicy | undefined {
  const rules = Object.entries(retention).map(([key, policy]) => ({
    key, policy, matches: isGlob(key) ? (set: string) => globToRegExp(key).test(set) : (set: string) => set === key,
  }));
  return (set) => {
    const rule = rules.find((r) => r.matches(set));
    return rule ? { set, policy: rule.policy, from: `config repository ${profile} retention ${JSON.stringify(rule.key)}` } : undefined;
  };
}

export async function prunePolicies(repo: Repository, sources: PolicySources): Promise<PrunePolicies> {
  if (sources.options && sources.recipe !== undefined) {
    throw new UsageError('prune --all takes its policies from --recipe FILE or from --keep-* options, not both');
  }
  let recipe: { path: string; recipe: BackupRecipe; policy: RetentionPolicy } | undefined;
  if (sources.recipe !== undefined) {
    const r = await loadRecipe(sources.recipe);
    if (r.kind !== 'backup') throw new UsageError(`recipe ${sources.recipe} is a restore recipe: prune --all --recipe needs a backup recipe with policy.retention`);
    if (!r.policy.retention) throw new UsageError(`recipe ${sources.recipe} has no policy.retention: nothing says what to keep`);
    recipe = { path: sources.recipe, recipe: r, policy: r.policy.retention };
  }
  if (!sources.options && !recipe && !sources.policyFor) throw new UsageError('prune --all needs a policy: --recipe FILE (its policy.retention), --keep-last N (for every set), or retention in the repository\'s config file profile');
  const sets = [...new Set((await repo.listGenerations()).map((g) => g.set))].sort();
  const chosen: SetPolicy[] = [];
  const unmanaged: string[] = [];
  for (const set of sets) {
    const p = sources.policyFor?.(set)
      ?? (recipe && recipeCovers(recipe.recipe, set) ? { set, policy: recipe.policy, from: `recipe ${recipe.path}` } : undefined)
      ?? (sources.options ? { set, policy: sources.options, from: '--keep-* options' } : undefined);
    if (p) chosen.push(p);
    else unmanaged.push(set);
  }
  return { sets: chosen, unmanaged };
}
