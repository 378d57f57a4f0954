/** `vmbkp list`: every set of a repository (or one) with its generations, as `list --json` and the API show them. */
import type { Repository } from '../repository/repository.js';
import { generationSummary } from './generation-summary.js';

export type GenerationSummary = ReturnType<typeof generationSummary>;

export interface SetListing {
  readonly repository: string;
  readonly sets: { readonly name: string; readonly generations: GenerationSummary[] }[];
}

export async function listSets(repo: Repository, set?: string): Promise<SetListing> {
  const refs = await repo.listGenerations(set);
  const sets = new Map<string, GenerationSummary[]>();
  for (const r of refs) {
    const m = await repo.readGeneration(r.set, r.generation);
    const l = sets.get(r.set) ?? [];
    l.push(generationSummary(m));
    sets.set(r.set, l);
  }
  return { repository: repo.location, sets: [...sets].map(([name, generations]) => ({ name, generations })) };
}
