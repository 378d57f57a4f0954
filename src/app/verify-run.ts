/** `vmbkp verify` as the CLI prints it under --json and the server keeps as a job's result. */
import { RepositoryDamagedError } from '../errors.js';
import type { OnCountProgress } from '../repository/count-progress.js';
import type { Repository } from '../repository/repository.js';
import type { StorageCounters } from '../storage/backend.js';
import { type VerifyReport, verify } from '../repository/verify.js';
import { storageReport } from './repository.js';

export type VerifyResult = { readonly ok: boolean; readonly storage?: StorageCounters } & VerifyReport;

export async function verifyRepository(req: {
  readonly repo: Repository; readonly readData: boolean;
  readonly onWarning?: (message: string) => void; readonly onProgress?: OnCountProgress;
}): Promise<VerifyResult> {
  const report = await verify({
    repo: req.repo, readData: req.readData,
    ...(req.onWarning ? { onWarning: req.onWarning } : {}), ...(req.onProgress ? { onProgress: req.onProgress } : {}),
  });
  return { ok: report.problems.length === 0, ...report, ...storageReport(req.repo) };
}

/** The error a verify that found problems ends with (exit 5), naming the first. */
export function verifyFailure(repo: Repository, r: VerifyResult): RepositoryDamagedError | undefined {
  if (r.ok) return undefined;
  return new RepositoryDamagedError(`verify of ${repo.location} found ${r.problems.length} problems; first: ${r.problems[0]!.message}`);
}
