/** Resolving what the user named: a generation number or "latest", a disk of a generation. */
import { InputError, NotFoundError } from '../errors.js';
import type { DiskRecord, GenerationManifest } from '../repository/generation.js';
import type { Repository } from '../repository/repository.js';

export async function resolveGeneration(repo: Repository, set: string, which: string): Promise<GenerationManifest> {
  if (which === 'latest') {
    const gens = await repo.listGenerations(set);
    const last = gens[gens.length - 1];
    if (!last) throw new NotFoundError(`set ${set} has no generations in ${repo.location}`);
    return repo.readGeneration(set, last.generation);
  }
  if (!/^[1-9]\d{0,8}$/.test(which)) throw new InputError(`generation ${JSON.stringify(which)} is invalid: give a number or "latest"`);
  return repo.readGeneration(set, Number(which));
}

export function findDisk(m: GenerationManifest, disk: string): DiskRecord {
  const d = m.disks.find((x) => x.name === disk);
  if (!d) throw new NotFoundError(`set ${m.set} generation ${m.generation} has no disk ${disk} (it has: ${m.disks.map((x) => x.name).join(', ') || 'none'})`);
  return d;
}
