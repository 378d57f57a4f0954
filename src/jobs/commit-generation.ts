/**
 * Committing a generation: its manifest written, write-once, as the next generation of its
 * set. Backups and copies commit alike, after every blob the manifest names is durable and
 * indexed.
 */
import { AlreadyExistsError } from '../errors.js';
import type { GenerationManifest } from '../repository/generation.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';

export interface CommitOptions {
  readonly onWarning?: (message: string) => void;
  /**
   * Asked under the set's commit lock, with the set's generation numbers: the number of a
   * generation that makes this commit unnecessary (a copy finds its generation committed
   * by another copy meanwhile), or undefined to go on and commit.
   */
  readonly alreadyThere?: (numbers: readonly number[]) => Promise<number | undefined>;
}

/**
 * Writes `manifest` as the next generation of its set; returns the number it got (also in
 * `manifest.generation`), or with `alreadyThere`, the number that made it unnecessary.
 *
 * Two commits of one set (from two hosts, say) may come together: the set's commit lock lets
 * one at a time look for the next free number and write its manifest (where puts are not
 * create-if-absent, as in a versioned S3 bucket, the lock is what keeps two generations from
 * one number). A put that finds the number taken anyway (a commit of an older vmbkp, which
 * takes no commit lock) takes the next one.
 */
export async function commitAsNext(repo: Repository, manifest: GenerationManifest, options: CommitOptions = {}): Promise<{ generation: number; committed: boolean }> {
  const commit = await RepositoryLock.acquireCommit(repo, manifest.set, options.onWarning);
  try {
    const numbers = (await repo.listGenerations(manifest.set)).map((g) => g.generation);
    const there = await options.alreadyThere?.(numbers);
    if (there !== undefined) return { generation: there, committed: false };
    manifest.generation = Math.max(manifest.generation, ...numbers.map((n) => n + 1));
    for (;;) {
      try {
        await repo.commitGeneration(manifest);
        return { generation: manifest.generation, committed: true };
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        manifest.generation++;
      }
    }
  } catch (err) {
    await commit.releaseAfterFailure();
    throw err;
  } finally {
    await commit.release();
  }
}
