import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { GenerationManifest } from '../../repository/generation.js';
import type { Extent } from '../../sources/types.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes, duration, rate, table } from '../format.js';
import { progressSink } from '../progress.js';
import type { VmBackupOptions } from '../backup-vm.js';
import { addVcenterOptions } from '../vcenter.js';

interface BackupOptions extends GlobalOptions, VmBackupOptions {
  set?: string;
  mode: string;
  changed: string[];
  changedBitmap: string[];
  compressionLevel?: string;
  diffEvery?: string;
}

/** Splits "NAME=VALUE" arguments; names a flag in the error. */
export function splitAssignment(arg: string, what: string): [string, string] {
  const i = arg.indexOf('=');
  if (i <= 0 || i === arg.length - 1) throw new UsageError(`${what} ${JSON.stringify(arg)} must look like NAME=VALUE`);
  return [arg.slice(0, i), arg.slice(i + 1)];
}

async function readChanged(specs: string[]): Promise<Map<string, Extent[]>> {
  const { readChangedExtents } = await import('../../app/changed-extents.js');
  const out = new Map<string, Extent[]>();
  for (const spec of specs) {
    const [disk, file] = splitAssignment(spec, '--changed');
    out.set(disk, await readChangedExtents(disk, file));
  }
  return out;
}

export function summarize(m: GenerationManifest): string {
  const rows = m.disks.map((d) => [
    d.name, d.mode, bytes(d.size), bytes(d.stats.bytesRead), bytes(d.stats.bytesStored), duration(d.stats.durationMs), rate(d.stats.bytesRead, d.stats.durationMs),
  ]);
  const notes = m.disks.filter((d) => d.note).map((d) => `  ${d.name}: ${d.note}`);
  return [`set ${m.set} generation ${m.generation} (${m.mode})`, table(['disk', 'mode', 'size', 'read', 'stored', 'time', 'rate'], rows), ...notes].join('\n');
}

export function register(program: Command): void {
  const cmd = program.command('backup')
    .description('back up disks as a new generation of a set, or vSphere VMs online (--vcenter … --vm NAME)')
    .argument('[disks...]', 'disks as NAME=URI, e.g. sda=file:/images/web01.img')
    .option('--set <name>', 'backup set of the disks (VM backups use the VM name)')
    .option('--mode <mode>', 'auto | full | diff | incr', 'auto')
    .option('--changed <disk=extents.json>', 'changed extents of a disk since the previous generation (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--changed-bitmap <disk=name>', 'take changed extents from the QEMU dirty bitmap NAME of an NBD disk (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--compression-level <n>', 'zstd level, 1–19 (default 3)')
    .option('--diff-every <n>', 'every N-th backup of a disk reads it whole (a diff) even where incr is possible, and warns of changes the change tracking missed')
    .option('--vm <name|moref>', 'with --vcenter: a VM to back up (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--transport <kind>', 'with --vcenter: https (datastore files), nfc (export lease: any datastore, vSAN and vVols too) or vddk (nbdkit vddk plugin)', 'https')
    .option('--quiesce [required]', 'with --vcenter: quiesce the guest file systems (VMware Tools) for the snapshot; a VM that could not be quiesced is backed up crash-consistent with a warning, or with --quiesce=required not at all')
    .option('--memory', "with --vcenter: include the VM's memory in the snapshot")
    .option('--enable-cbt', 'with --vcenter: turn changed-block tracking on where it is off')
    .option('--vddk-libdir <dir>', "with --transport vddk: where VMware's VDDK is unpacked")
    .option('--vddk-transports <modes>', 'with --transport vddk: VDDK transport modes, e.g. hotadd:nbdssl')
    .option('--dry-run', 'show each disk and the mode it would get (and the bytes it would read), changing nothing: no snapshot, no lock, nothing written');
  addVcenterOptions(cmd);
  cmd.action(async (diskArgs: string[], opts: BackupOptions) => {
    const { isRequestedMode } = await import('../../repository/requested-mode.js');
    const out = new Output(!!opts.json);
    const mode = opts.mode;
    if (!isRequestedMode(mode)) throw new UsageError(`--mode ${JSON.stringify(opts.mode)} is invalid: use auto, full, diff or incr`);
    let level: number | undefined;
    if (opts.compressionLevel !== undefined) {
      level = Number(opts.compressionLevel);
      if (!Number.isInteger(level) || level < 1 || level > 19) throw new UsageError(`--compression-level must be 1–19, got ${opts.compressionLevel}`);
    }
    let diffEvery: number | undefined;
    if (opts.diffEvery !== undefined) {
      diffEvery = Number(opts.diffEvery);
      if (!Number.isInteger(diffEvery) || diffEvery < 1) throw new UsageError(`--diff-every must be a whole number from 1, got ${opts.diffEvery}`);
    }
    // --vm alone is a VM backup too: its vCenter may come from VMBKP_VCENTER or the config file.
    if (opts.vcenter !== undefined || opts.vm.length > 0) {
      if (diskArgs.length > 0 || opts.set !== undefined) throw new UsageError('a VM backup (--vcenter, --vm) takes no disk arguments and no --set: the set is named after the VM');
      const { runVmBackups } = await import('../backup-vm.js');
      await runVmBackups(opts, mode, level, summarize, diffEvery);
      return;
    }
    if (diskArgs.length === 0) throw new UsageError('give disks as NAME=URI, or --vcenter and --vm for a VM backup');
    if (opts.set === undefined) throw new UsageError('--set is required when backing up disks');
    const setName = opts.set;
    const specs = diskArgs.map((a) => splitAssignment(a, 'disk'));
    const names = new Set<string>();
    for (const [name] of specs) {
      if (names.has(name)) throw new UsageError(`disk ${name} is given twice`);
      names.add(name);
    }
    const changed = await readChanged(opts.changed);
    for (const disk of changed.keys()) if (!names.has(disk)) throw new UsageError(`--changed names disk ${disk}, which is not backed up`);
    const bitmaps = new Map(opts.changedBitmap.map((a) => splitAssignment(a, '--changed-bitmap')));
    for (const disk of bitmaps.keys()) {
      if (!names.has(disk)) throw new UsageError(`--changed-bitmap names disk ${disk}, which is not backed up`);
      if (changed.has(disk)) throw new UsageError(`disk ${disk} has both --changed and --changed-bitmap`);
    }

    // The backup's modules load while the repository opens: its key derivation (scrypt) runs
    // on libuv's thread pool, so the main thread compiles them meanwhile instead of after.
    if (!opts.dryRun) (await import('../../app/repository-start.js')).startWorkersEarly();
    const [repo, { backupDisks, planDiskBackup }, { generationSummary }, { storageReport }] = await Promise.all([
      openRepository(opts), import('../../app/backup-disks.js'), import('../../app/generation-summary.js'), import('../../app/repository.js'),
    ]);
    const disks = specs.map(([name, uri]) => ({ name, uri, changed: changed.get(name), bitmap: bitmaps.get(name) }));
    if (opts.dryRun) {
      const plan = await planDiskBackup({ repo, set: setName, mode, diffEvery, disks });
      out.result(plan, [`dry run, nothing was changed: set ${plan.set} generation ${plan.generation} would be backed up, reading ${bytes(plan.bytesToRead)}`,
        table(['disk', 'mode', 'size', 'read', 'source', 'note'], plan.disks.map((d) => [d.disk, d.mode, bytes(d.size), bytes(d.bytesToRead), d.source, d.why ?? '']))].join('\n'));
      return;
    }
    const progress = progressSink(out.json);
    const manifest = await backupDisks({
      repo, set: setName, mode, compressionLevel: level, diffEvery,
      disks,
      onEvent: (e) => {
        if (e.type === 'disk-start') {
          out.step(`disk ${e.disk}: ${e.mode} backup of ${bytes(e.bytesTotal)}${e.note ? ` (${e.note})` : ''}`);
          progress.start(`${e.disk} (${e.mode})`, e.bytesTotal);
        } else if (e.type === 'progress') progress.update(e.progress.bytesDone, e.progress.bytesTotal);
        else if (e.type === 'disk-done') {
          progress.stop();
          out.step(`disk ${e.disk}: ${bytes(e.record.stats.bytesRead)} read, ${bytes(e.record.stats.bytesStored)} stored in ${duration(e.record.stats.durationMs)}`);
        } else if (e.type === 'warning') out.warn(e.message);
      },
    });
    progress.stop();
    out.result({ ...generationSummary(manifest), ...storageReport(repo) }, summarize(manifest));
    out.retries(repo);
  });
}
