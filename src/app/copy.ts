/**
 * Off-site copies: generations copied from one repository into another (`vmbkp copy`, and a
 * backup recipe's `copy` after its backups). Both repositories are opened by the caller
 * (app/repository.ts, each with its own password), so any two backends pair up.
 */
import { type CopyReport, type CopyRequest, copyGenerations } from '../jobs/copy-generations.js';

export type { CopyEvent, CopyReport, CopyRequest, GenerationCopy } from '../jobs/copy-generations.js';
export { checkCopyPair, selectsInOneSet } from '../jobs/copy-generations.js';
export { parseGenerationSelector } from '../jobs/select-generation.js';

export function copyRepository(req: CopyRequest): Promise<CopyReport> {
  return copyGenerations(req);
}
