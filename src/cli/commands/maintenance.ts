/** verify, prune, gc, unlock: keeping a repository healthy. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { LockView, SetPolicy } from '../../app/maintenance.js';
import type { GcResult } from '../../repository/gc.js';
import type { RetentionPolicy } from '../../repository/retention.js';
import { type GlobalOptions, Output, loadedConfig, openRepository, repoSettings, wholeNumber } from '../context.js';
import { bytes, table } from '../format.js';
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
      const { verifyFailure, verifyRepository } = await import('../../app/verify-run.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const report = await verifyRepository({ repo, readData: !!opts.readData, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'verify') });
      progress.stop();
      const human = [
        `${report.generations} generations, ${report.disks} disks, ${report.packs} packs, ${report.blobs} blobs${opts.readData ? `, ${bytes(report.bytesRead)} read and re-hashed` : ''}`,
        ...(report.unreferencedBlobs === null ? [`unreferenced data not counted: damaged generations hide what they reference`]
          : report.unreferencedPacks || report.unreferencedBlobs ? [`unreferenced: ${report.unreferencedPacks} packs, ${report.unreferencedBlobs} blobs (vmbkp gc removes them)`] : []),
        ...report.problems.map((p) => `problem: ${p.message}`),
        report.ok ? 'no problems found' : `${report.problems.length} problems found`,
      ].join('\n');
      out.result(report, human);
      out.retries(repo);
      const failure = verifyFailure(repo, report);
      if (failure) throw failure;
    });

  program.command('prune')
    .description('remove generations that the retention policy does not keep, then run gc (unless --no-gc), under one lock')
    .option('--set <name>', 'backup set to prune')
    .option('--all', 'every set: each by the policy of --recipe, or by the --keep-* options; a set without a policy is left alone')
    .option('--recipe <file>', 'with --all: take each set\'s policy from this backup recipe\'s policy.retention (the sets of the VMs it names)')
    .option('--keep-last <n>', 'keep the n newest generations (n ≥ 1)')
    .option('--keep-daily <n>', 'keep the newest generation of each of the last n days that have one')
    .option('--keep-weekly <n>', 'likewise for ISO weeks')
    .option('--keep-monthly <n>', 'likewise for months')
    .option('--no-gc', 'do not run gc afterwards (the data of removed generations stays until vmbkp gc)')
    .option('--dry-run', 'show what would be removed and what gc would then free; change nothing')
    .action(async (opts: PruneOptions) => {
      const { runPrune } = await import('../../app/prune-run.js');
      const out = new Output(!!opts.json);
      const policy = keepOptions(opts);
      if (opts.all && opts.set !== undefined) throw new UsageError('give --set NAME or --all, not both');
      if (!opts.all && opts.recipe !== undefined) throw new UsageError('--recipe needs --all (it gives the policies of several sets)');
      if (!opts.all && opts.set === undefined) throw new UsageError('give --set NAME (with --keep-last N), or --all');
      if (!opts.all && !policy) throw new UsageError('prune --set needs --keep-last N');
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const dryRun = !!opts.dryRun;
      const run = await runPrune({
        repo, dryRun, gc: opts.gc, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'prune'),
        target: opts.all ? { all: true, options: policy, recipe: opts.recipe, policyFor: await profileRetention(opts, !!policy || opts.recipe !== undefined) }
          : { set: opts.set!, policy: policy! },
      });
      const { result: r, policies: chosen } = run;
      progress.stop();
      const removed = r.sets.reduce((n, s) => n + s.remove.length, 0);
      const human = [
        ...r.sets.flatMap((p) => [
          ...p.keep.map((k) => `keep   ${p.set} generation ${k.generation} (${k.reasons.join(', ')})`),
          ...p.remove.map((g) => `${dryRun ? 'would remove' : 'remove'} ${p.set} generation ${g}`),
          ...p.locked.map((l) => `locked ${p.set} generation ${l.generation} (the object lock keeps it until ${l.until})`),
        ]),
        ...chosen.unmanaged.map((s) => `left alone ${s}: no retention policy for it`),
        dryRun ? `dry run: would remove ${removed} generations; nothing was changed` : `${removed} generations removed`,
        r.gc ? gcText(r.gc) : opts.gc ? (dryRun ? 'gc would not run: no generation would be removed' : 'gc not run: no generation removed') : 'gc not run (--no-gc): run vmbkp gc to reclaim the data of removed generations',
      ].filter((l) => l !== '').join('\n');
      out.result(run.json, human);
    });

  program.command('gc')
    .description('remove data that no generation references')
    .option('--dry-run', 'show the packs and bytes gc would free; write and remove nothing')
    .action(async (opts: GlobalOptions & { dryRun?: boolean }) => {
      const { gc } = await import('../../app/maintenance.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const r = await gc({ repo, dryRun: !!opts.dryRun, onWarning: (m) => { progress.stop(); out.warn(m); }, onProgress: maintenanceProgress(out, progress, 'gc') });
      progress.stop();
      out.result(r, gcText(r));
    });

  program.command('unlock')
    .description('remove stale locks (of processes that are gone), or all locks with --all; --list shows them')
    .option('--all', 'remove every lock: only when no vmbkp uses the repository')
    .option('--list', 'list the locks present (kind, holder, since, stale or live), removing none')
    .option('--dry-run', 'show the locks that would be removed, removing none')
    .action(async (opts: GlobalOptions & { all?: boolean; list?: boolean; dryRun?: boolean }) => {
      const { listLocks, unlock } = await import('../../app/maintenance.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      if (opts.list) {
        if (opts.all || opts.dryRun) throw new UsageError('--list removes nothing: it takes no --all and no --dry-run');
        const locks = await listLocks(repo);
        out.result({ locks }, locks.length ? table(['lock', 'kind', 'operation', 'holder', 'since', 'state'], locks.map(lockRow)) : 'no locks');
        return;
      }
      const dryRun = !!opts.dryRun;
      const removed = await unlock(repo, !!opts.all, dryRun);
      const verb = dryRun ? 'would remove' : 'removed';
      out.result({ dryRun, removed: removed.map((l) => l.name), locks: removed },
        removed.length ? [...removed.map((l) => `${verb} ${lockRow(l).join(' ')}`), dryRun ? `dry run: would remove ${removed.length} locks; nothing removed` : `removed ${removed.length} locks`].join('\n')
          : opts.all ? 'no locks' : 'no stale locks');
    });
}

interface PruneOptions extends GlobalOptions {
  set?: string; all?: boolean; recipe?: string; keepLast?: string; keepDaily?: string; keepWeekly?: string; keepMonthly?: string;
  /** false with --no-gc. */
  gc: boolean;
  dryRun?: boolean;
}

/** The --keep-* options as a policy; none when no --keep-* was given. */
function keepOptions(opts: PruneOptions): RetentionPolicy | undefined {
  const given = [opts.keepLast, opts.keepDaily, opts.keepWeekly, opts.keepMonthly].some((v) => v !== undefined);
  if (!given) return undefined;
  if (opts.keepLast === undefined) throw new UsageError('prune needs --keep-last N with N ≥ 1: the newest generation is always kept');
  return {
    last: wholeNumber(opts.keepLast, '--keep-last'),
    ...(opts.keepDaily !== undefined ? { daily: wholeNumber(opts.keepDaily, '--keep-daily') } : {}),
    ...(opts.keepWeekly !== undefined ? { weekly: wholeNumber(opts.keepWeekly, '--keep-weekly') } : {}),
    ...(opts.keepMonthly !== undefined ? { monthly: wholeNumber(opts.keepMonthly, '--keep-monthly') } : {}),
  };
}

/**
 * prune --all without --keep-* or --recipe: the `retention` of the repository's config file
 * profile (when the repository was named by a profile, or is the default one).
 */
async function profileRetention(opts: GlobalOptions, explicit: boolean): Promise<((set: string) => SetPolicy | undefined) | undefined> {
  if (explicit) return undefined;
  const profile = (await repoSettings(opts))?.profile;
  const retention = profile !== undefined ? (await loadedConfig()).data.repositories[profile]?.retention : undefined;
  if (profile === undefined || !retention) return undefined;
  const { profilePolicies } = await import('../../app/maintenance.js');
  return profilePolicies(profile, retention);
}

function gcText(r: GcResult): string {
  const lockedText = r.locked ? `\n${r.locked.packs} packs (${bytes(r.locked.bytes)}) holding unreferenced data stay locked; all of them can go after ${r.locked.until}` : '';
  if (r.dryRun) {
    return `gc would remove ${r.packsRemoved} packs, repack ${r.packsRepacked}, drop ${r.blobsRemoved} blobs and free ${bytes(r.bytesFreed)} (dry run: nothing written or removed)` + lockedText;
  }
  return `gc removed ${r.packsRemoved} packs, repacked ${r.packsRepacked}, dropped ${r.blobsRemoved} blobs, freed ${bytes(r.bytesFreed)}`
    + (r.uploadsSwept ? `, cleared ${r.uploadsSwept} interrupted uploads` : '') + lockedText;
}

function lockRow(l: LockView): string[] {
  return [l.name, l.kind ?? '?', l.operation ?? '(unreadable)', l.host !== undefined ? `pid ${l.pid} on ${l.host}` : '-', l.since ?? '-', l.stale ? 'stale' : 'live'];
}
