/**
 * `vmbkp show`: one set (every generation, one line each) or one generation in detail
 * (its disks, the machine it was made of, what was recorded as going wrong).
 */
import { resolveGeneration } from '../jobs/resolve.js';
import { NotFoundError } from '../errors.js';
import { type MachineDetails, machineDetails } from '../providers/machine-details.js';
import type { GenerationManifest } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import { generationSummary } from './generation-summary.js';

/** A generation's disks added up; its duration from start to end (disks may be read side by side). */
export interface GenerationTotals { size: number; bytesRead: number; bytesStored: number; durationMs: number }

function totals(m: GenerationManifest): GenerationTotals {
  const t = { size: 0, bytesRead: 0, bytesStored: 0, durationMs: Math.max(0, Date.parse(m.finished) - Date.parse(m.started)) };
  for (const d of m.disks) {
    t.size += d.size;
    t.bytesRead += d.stats.bytesRead;
    t.bytesStored += d.stats.bytesStored;
  }
  return t;
}

export type GenerationLine = ReturnType<typeof generationSummary> & { totals: GenerationTotals };

export interface SetDetails {
  readonly set: string;
  readonly generations: GenerationLine[];
}

export async function showSet(repo: Repository, set: string): Promise<SetDetails> {
  const refs = await repo.listGenerations(set);
  if (refs.length === 0) {
    const sets = [...new Set((await repo.listGenerations()).map((r) => r.set))];
    throw new NotFoundError(`set ${set} has no generations in ${repo.location} (sets: ${sets.join(', ') || 'none'})`);
  }
  const generations: GenerationLine[] = [];
  for (const r of refs) {
    const m = await repo.readGeneration(r.set, r.generation);
    generations.push({ ...generationSummary(m), totals: totals(m) });
  }
  return { set, generations };
}

export type GenerationDetails = GenerationLine & {
  readonly machineDetails?: MachineDetails;
  /**
   * What the generation records as having gone wrong: disks of the VM left out, change
   * tracking that missed changes. vmbkp stores no other warnings (those of a run are
   * printed while it runs).
   */
  readonly warnings: string[];
};

export async function showGeneration(repo: Repository, set: string, which: string): Promise<GenerationDetails> {
  const m = await resolveGeneration(repo, set, which);
  const details = machineDetails(m.machine);
  const warnings = [
    ...(details?.skippedDisks ?? []).map((d) => `disk ${d.key} (${d.label}) was not backed up: ${d.reason}`),
    ...m.disks.filter((d) => (d.cbtMissedBytes ?? 0) > 0)
      .map((d) => `disk ${d.name}: change tracking missed ${d.cbtMissedBytes} bytes that this full read caught`),
  ];
  return { ...generationSummary(m), totals: totals(m), ...(details ? { machineDetails: details } : {}), warnings };
}
