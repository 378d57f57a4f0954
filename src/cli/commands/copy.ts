/** `vmbkp copy --from-repo SRC --repo DEST`: generations the destination lacks, copied into it (off-site copies). */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { type FromRepoOptions, type GlobalOptions, Output, fromRepoPath, openRepository, openSourceRepository, repoPath } from '../context.js';
import { progressSink } from '../progress.js';

interface CopyOptions extends GlobalOptions, FromRepoOptions {
  set: string[];
  generation?: string;
  dryRun?: boolean;
}

export function register(program: Command): void {
  program.command('copy')
    .description('copy the generations another repository (--from-repo) has and this one (--repo) lacks: only missing chunks are sent')
    .option('--from-repo <repo>', 'the repository to copy from: a directory, s3:https://HOST[:PORT]/BUCKET[/PREFIX] or the name of one in the config file (or set VMBKP_FROM_REPO)')
    .option('--from-repo-password-file <file>', 'file holding its password (first line); or set VMBKP_FROM_REPO_PASSWORD_FILE or VMBKP_FROM_REPO_PASSWORD_COMMAND')
    .option('--set <name>', 'a set to copy (repeatable; default: every set)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--generation <g>', 'only this generation: a number or id prefix (needs one --set), or latest, latest~N, a date: picked in each set')
    .option('--dry-run', 'show what would be copied, reading no chunk and writing nothing')
    .action(async (opts: CopyOptions) => {
      const { checkCopyPair, copyRepository, parseGenerationSelector, selectsInOneSet } = await import('../../app/copy.js');
      const { storageReport } = await import('../../app/repository.js');
      const { copySummary } = await import('../copy-report.js');
      const out = new Output(!!opts.json);
      const fromPath = await fromRepoPath(opts);
      const toPath = await repoPath(opts);
      if (fromPath === toPath) throw new UsageError(`copying from ${fromPath} to itself refused: give another repository with --repo (the destination) or --from-repo (the source)`);
      if (opts.generation !== undefined && selectsInOneSet(parseGenerationSelector(opts.generation)) && opts.set.length !== 1) {
        throw new UsageError(`--generation ${opts.generation} needs exactly one --set (numbers and ids differ between sets); latest, latest~N and dates pick in each set`);
      }
      const from = await openSourceRepository(opts);
      const to = await openRepository(opts);
      checkCopyPair(from, to);
      const progress = progressSink(out.json);
      let label = '';
      let started = false;
      const report = await copyRepository({
        from, to, sets: opts.set, generation: opts.generation, dryRun: !!opts.dryRun,
        // One bar per disk, over the bytes it reads from the source (none when the destination has them all).
        onEvent: (e) => {
          switch (e.type) {
            case 'disk-start':
              progress.stop();
              started = false;
              label = `copy set ${e.set} generation ${e.from} disk ${e.disk}`;
              break;
            case 'progress':
              if (!started && e.progress.bytesTotal > 0) {
                progress.start(label, e.progress.bytesTotal);
                started = true;
              }
              progress.update(e.progress.bytesDone, e.progress.bytesTotal);
              break;
            case 'generation-done':
              progress.stop();
              started = false;
              out.step(`set ${e.generation.set} generation ${e.generation.from}: ${e.generation.status}${e.generation.status === 'copied' ? ` as generation ${e.generation.to}` : ''}`);
              break;
            case 'warning':
              out.warn(e.message);
              break;
          }
        },
      });
      progress.stop();
      // What a remote repository needed besides its requests (retries), for each that is one.
      const [fromStorage, toStorage] = [storageReport(from).storage, storageReport(to).storage];
      const storage = fromStorage || toStorage ? { storage: { ...(fromStorage ? { from: fromStorage } : {}), ...(toStorage ? { to: toStorage } : {}) } } : {};
      out.result({ ...report, ...storage }, copySummary(report));
      out.retries(from);
      out.retries(to);
    });
}
