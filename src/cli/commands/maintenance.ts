/** verify, prune, gc, unlock: keeping a repository healthy. */
import type { Command } from 'commander';
import { storageReport } from '../../app/repository.js';
import { RepositoryDamagedError } from '../../errors.js';
import { gc, prune, unlock, verify } from '../../app/maintenance.js';
import { type GlobalOptions, Output, openRepository, wholeNumber } from '../context.js';
import { bytes } from '../format.js';
import { type CountStep, type ProgressSink, countProgress, progressSink } from '../progress.js';

/** Count progress on a terminal, and each step once under --verbose. */
function maintenanceProgress(out: Output, progress: ProgressSink, command: string): (p: CountStep) => void {
  const bar = countProgress(progress, command);
  let step: string | undefined;
  return (p) => {
    if (p.step !== step) { step = p.step; out.step(`${command}: ${p.step} (${p.total} ${p.unit})`); }
    bar(p);
  };
}

export function register(program: Command): void {
  program.command('verify')
    .description('check that every generation is complete; --read-data re-hashes every chunk')
    .option('--read-data', 'read, decompress and re-hash every stored blob')
    .action(async (opts: GlobalOptions & { readData?: boolean }) => {
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const report = await verify({ repo, readData: !!opts.readData, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'verify') });
      progress.stop();
      const ok = report.problems.length === 0;
      const human = [
        `${report.generations} generations, ${report.disks} disks, ${report.packs} packs, ${report.blobs} blobs${opts.readData ? `, ${bytes(report.bytesRead)} read and re-hashed` : ''}`,
        ...(report.unreferencedBlobs === null ? [`unreferenced data not counted: damaged generations hide what they reference`]
          : report.unreferencedPacks || report.unreferencedBlobs ? [`unreferenced: ${report.unreferencedPacks} packs, ${report.unreferencedBlobs} blobs (vmbkp gc removes them)`] : []),
        ...report.problems.map((p) => `problem: ${p.message}`),
        ok ? 'no problems found' : `${report.problems.length} problems found`,
      ].join('\n');
      out.result({ ok, ...report, ...storageReport(repo) }, human);
      out.retries(repo);
      if (!ok) {
        const first = report.problems[0]!;
        throw new RepositoryDamagedError(`verify of ${repo.location} found ${report.problems.length} problems; first: ${first.message}`);
      }
    });

  program.command('prune')
    .description('remove generations of a set that the retention policy does not keep (then run gc)')
    .requiredOption('--set <name>', 'backup set')
    .requiredOption('--keep-last <n>', 'keep the n newest generations (n ≥ 1)')
    .option('--keep-daily <n>', 'keep the newest generation of each of the last n days that have one')
    .option('--keep-weekly <n>', 'likewise for ISO weeks')
    .option('--keep-monthly <n>', 'likewise for months')
    .option('--dry-run', 'show what would be removed, remove nothing')
    .action(async (opts: GlobalOptions & { set: string; keepLast: string; keepDaily?: string; keepWeekly?: string; keepMonthly?: string; dryRun?: boolean }) => {
      const out = new Output(!!opts.json);
      const policy = {
        last: wholeNumber(opts.keepLast, '--keep-last'),
        ...(opts.keepDaily !== undefined ? { daily: wholeNumber(opts.keepDaily, '--keep-daily') } : {}),
        ...(opts.keepWeekly !== undefined ? { weekly: wholeNumber(opts.keepWeekly, '--keep-weekly') } : {}),
        ...(opts.keepMonthly !== undefined ? { monthly: wholeNumber(opts.keepMonthly, '--keep-monthly') } : {}),
      };
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const r = await prune({ repo, set: opts.set, policy, dryRun: !!opts.dryRun, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'prune') });
      progress.stop();
      const human = [
        ...r.keep.map((k) => `keep   ${r.set} generation ${k.generation} (${k.reasons.join(', ')})`),
        ...r.remove.map((g) => `${r.dryRun ? 'would remove' : 'remove'} ${r.set} generation ${g}`),
        ...r.locked.map((l) => `locked ${r.set} generation ${l.generation} (the object lock keeps it until ${l.until})`),
        r.dryRun ? 'dry run: nothing removed' : `${r.remove.length} generations removed; run vmbkp gc to reclaim their data`,
      ].join('\n');
      out.result(r, human);
    });

  program.command('gc')
    .description('remove data that no generation references')
    .action(async (opts: GlobalOptions) => {
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const r = await gc({ repo, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'gc') });
      progress.stop();
      out.result(r, `removed ${r.packsRemoved} packs, repacked ${r.packsRepacked}, dropped ${r.blobsRemoved} blobs, freed ${bytes(r.bytesFreed)}`
        + (r.uploadsSwept ? `, cleared ${r.uploadsSwept} interrupted uploads` : '')
        + (r.locked ? `\n${r.locked.packs} packs (${bytes(r.locked.bytes)}) holding unreferenced data stay locked; all of them can go after ${r.locked.until}` : ''));
    });

  program.command('unlock')
    .description('remove stale locks (of processes that are gone), or all locks with --all')
    .option('--all', 'remove every lock: only when no vmbkp uses the repository')
    .action(async (opts: GlobalOptions & { all?: boolean }) => {
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const removed = await unlock(repo, !!opts.all);
      out.result({ removed }, removed.length ? `removed ${removed.length} locks` : 'no stale locks');
    });
}
