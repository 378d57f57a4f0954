/** Resolving what the user named: a generation (select-generation.ts), a disk of a generation (by key, label or bus position). */
import { InputError, NotFoundError } from '../errors.js';
import { type DiskName, diskNames, describeDiskName } from '../providers/disk-names.js';
import type { DiskRecord, GenerationManifest } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';
import { type GenerationCandidate, chooseGeneration, parseGenerationSelector } from './select-generation.js';

/** Every generation of a set with what selectors look at (reads each manifest). */
async function candidatesOf(repo: Repository, set: string): Promise<GenerationCandidate[]> {
  const out: GenerationCandidate[] = [];
  for (const r of await repo.listGenerations(set)) {
    const m = await repo.readGeneration(set, r.generation);
    out.push({ generation: m.generation, id: m.id, started: m.started });
  }
  return out;
}

export async function resolveGeneration(repo: Repository, set: string, which: string): Promise<GenerationManifest> {
  const sel = parseGenerationSelector(which);
  if (sel.kind === 'number') {
    try {
      return await repo.readGeneration(set, sel.generation);
    } catch (err) {
      // Four or more digits may also be the start of an id: tried only when no generation has that number.
      if (!(err instanceof NotFoundError) || which.length < 4) throw err;
      const byId = (await candidatesOf(repo, set)).filter((c) => c.id.startsWith(which));
      if (byId.length !== 1) throw err;
      return repo.readGeneration(set, byId[0]!.generation);
    }
  }
  if (sel.kind === 'latest' && sel.back === 0) {
    // The newest needs no manifest but its own.
    const gens = await repo.listGenerations(set);
    const last = gens[gens.length - 1];
    if (!last) throw new NotFoundError(`set ${set} has no generations in ${repo.location}`);
    return repo.readGeneration(set, last.generation);
  }
  const candidates = await candidatesOf(repo, set);
  if (candidates.length === 0) throw new NotFoundError(`set ${set} has no generations in ${repo.location}`);
  return repo.readGeneration(set, chooseGeneration(set, which, sel, candidates).generation);
}

/**
 * The disk of a generation the user named: its stored name (a VM disk's device key), or for a
 * VM disk its label ("Hard disk 2", any case) or bus position ("scsi0:1").
 */
export function findDisk(m: GenerationManifest, disk: string): DiskRecord {
  const names = diskNames(m);
  const exact = m.disks.find((x) => x.name === disk);
  if (exact) return exact;
  const wanted = disk.trim().replace(/\s+/g, ' ').toLowerCase();
  const matches = (n: DiskName) => n.label?.toLowerCase() === wanted || n.bus === wanted;
  const fit = names.filter(matches);
  const list = names.map(describeDiskName).join(', ') || 'none';
  if (fit.length > 1) throw new InputError(`set ${m.set} generation ${m.generation}: disk ${JSON.stringify(disk)} is ambiguous: it names ${fit.map(describeDiskName).join(', ')} (it has: ${list})`);
  const record = fit[0] && m.disks.find((x) => x.name === fit[0]!.name);
  if (!record) throw new NotFoundError(`set ${m.set} generation ${m.generation} has no disk ${disk} (it has: ${list})`);
  return record;
}
