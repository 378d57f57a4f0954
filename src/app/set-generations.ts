/**
 * A set's generations as the API and dashboard show them: each generation of `list --json`
 * with its figures added up (bytes read and stored, duration) and what the last recorded
 * verify says of it.
 */
import { newestRecord } from '../repository/records.js';
import type { Repository } from '../repository/repository.js';
import { type GenerationLine, showSet } from './show.js';

/**
 * ok: the last verify covered it and found nothing; failed: it named it; unverified: no
 * verify is recorded, or the generation finished after the last one.
 */
export type VerifyStatus = 'ok' | 'failed' | 'unverified';

export type GenerationFigures = GenerationLine & {
  readonly bytesRead: number;
  readonly bytesStored: number;
  readonly durationMs: number;
  readonly verify: { readonly status: VerifyStatus; readonly time: string | null };
};

export async function setGenerations(repo: Repository, set: string): Promise<GenerationFigures[]> {
  const [{ generations }, record] = await Promise.all([
    // A set without generations is a NotFoundError naming the sets there are.
    showSet(repo, set),
    newestRecord(repo, 'verify'),
  ]);
  return generations.map((g) => {
    let status: VerifyStatus = 'unverified';
    if (record) {
      if (record.failed.some((f) => f.set === g.set && f.generation === g.generation)) status = 'failed';
      else if (Date.parse(g.finished) <= Date.parse(record.time)) status = 'ok';
    }
    return {
      ...g, bytesRead: g.totals.bytesRead, bytesStored: g.totals.bytesStored, durationMs: g.totals.durationMs,
      verify: { status, time: record?.time ?? null },
    };
  });
}
