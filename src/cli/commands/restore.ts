import type { Command } from 'commander';
import { AlreadyExistsError, UsageError } from '../../errors.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes, duration, rate } from '../format.js';
import { progressSink } from '../progress.js';
import type { VmRestoreOptions } from '../restore-vm.js';
import { addVcenterOptions } from '../vcenter.js';

interface RestoreOptions extends GlobalOptions, VmRestoreOptions {
  disk?: string;
  to?: string;
}

/** Options that only a VM restore (--vcenter) takes, as the user spells them. */
const VM_ONLY: [keyof RestoreOptions, string][] = [
  ['name', '--name'], ['host', '--host'], ['datastore', '--datastore'], ['folder', '--folder'], ['resourcePool', '--resource-pool'],
  ['powerOn', '--power-on'], ['keepIdentity', '--keep-identity'], ['user', '--user'], ['passwordFile', '--password-file'],
  ['thumbprint', '--thumbprint'], ['caFile', '--ca-file'], ['insecure', '--insecure'], ['vddkLibdir', '--vddk-libdir'], ['vddkTransports', '--vddk-transports'],
  ['disksAtOnce', '--disks-at-once'],
];

export function register(program: Command): void {
  const cmd = program.command('restore')
    .description('restore a disk of a generation to a raw or qcow2 image or an NBD export (--disk D --to URI), or a VM backup as a new VM (--vcenter … --name NEW)')
    .requiredOption('--set <name>', 'backup set')
    .option('--generation <g>', 'a number, latest, latest~N, a date or date-time (newest at or before it), or an id prefix', 'latest')
    .option('--disk <disk>', 'disk to restore (disk restore): its name, or a VM disk\'s key (2000), label ("Hard disk 1") or bus position (scsi0:0)')
    .option('--to <uri>', 'disk restore target: file:PATH (sparse raw), qcow2:PATH, nbd://… or nbd+unix://…')
    .option('--overwrite', 'replace an existing target file; with --vcenter: write over the disks of the existing powered-off VM --name')
    .option('--name <vm>', 'with --vcenter: name of the restored VM')
    .option('--host <name>', 'with --vcenter: ESXi host to run it on (default: one that mounts the datastore)')
    .option('--datastore <name>', "with --vcenter: datastore for its files and disks (default: the original VM's)")
    .option('--folder <path>', 'with --vcenter: inventory path of its VM folder, e.g. DC0/vm/restored')
    .option('--resource-pool <pool>', 'with --vcenter: resource pool name or inventory path')
    .option('--network <old=new>', 'with --vcenter: connect the NICs on network OLD to NEW (repeatable; others keep their network)',
      (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--power-on', 'with --vcenter: power the VM on once its disks are written and verified')
    .option('--keep-identity', 'with --vcenter: keep the BIOS and instance UUIDs and MAC addresses (default: new ones)')
    .option('--transport <kind>', 'with --vcenter: https (datastore upload), nfc (import lease: a new VM on any datastore, vSAN and vVols too; not with --overwrite) or vddk (nbdkit vddk plugin)', 'https')
    .option('--vddk-libdir <dir>', "with --transport vddk: where VMware's VDDK is unpacked")
    .option('--vddk-transports <modes>', 'with --transport vddk: VDDK transport modes, e.g. hotadd:nbdssl')
    .option('--disks-at-once <n>', 'with --vcenter: disks written and checked at once (default 1)')
    .option('--dry-run', 'show what would be written where (and whether a target exists and would be overwritten), changing nothing');
  addVcenterOptions(cmd);
  cmd.action(async (opts: RestoreOptions) => {
    const { storageReport } = await import('../../app/repository.js');
    const { planDiskRestore, restoreDiskTo } = await import('../../app/restore-disk.js');
    const { runVmRestore } = await import('../restore-vm.js');
    // --name alone is a VM restore too: its vCenter may come from VMBKP_VCENTER or the config file.
    if (opts.vcenter !== undefined || opts.name !== undefined) {
      if (opts.disk !== undefined || opts.to !== undefined) throw new UsageError('a VM restore (--vcenter, --name) takes no --disk and no --to: it restores every disk into the new VM');
      await runVmRestore(opts);
      return;
    }
    const vmOnly = VM_ONLY.filter(([k]) => opts[k] !== undefined).map(([, flag]) => flag);
    if (opts.network.length > 0) vmOnly.push('--network');
    if (opts.transport !== 'https') vmOnly.push('--transport');
    if (vmOnly.length > 0) throw new UsageError(`${vmOnly.join(', ')} need${vmOnly.length === 1 ? 's' : ''} --vcenter (a VM restore)`);
    if (opts.disk === undefined || opts.to === undefined) throw new UsageError('give --disk and --to to restore a disk, or --vcenter and --name to restore a VM');

    const out = new Output(!!opts.json);
    const repo = await openRepository(opts);
    if (opts.dryRun) {
      const plan = await planDiskRestore({ repo, set: opts.set, generation: opts.generation, disk: opts.disk, to: opts.to, overwrite: !!opts.overwrite });
      const t = plan.target;
      const state = t.kind === 'nbd' ? 'an NBD export, written in place (not contacted in a dry run)'
        : !t.exists ? 'does not exist: it would be created' : t.overwritten ? `exists (${bytes(t.currentSize ?? 0)}): it would be replaced` : 'exists: the restore would be refused';
      out.result(plan, [`dry run, nothing was changed: set ${plan.set} generation ${plan.generation} disk ${plan.disk} (${bytes(plan.size)}) would be written to ${t.uri}: `
        + `at most ${bytes(plan.bytesToWriteAtMost)} of data, the rest left as zeros`, `target ${state}`].join('\n'));
      if (plan.refused) throw new AlreadyExistsError(plan.refused);
      return;
    }
    const progress = progressSink(out.json);
    const disk = opts.disk;
    const result = await restoreDiskTo({
      repo, set: opts.set, generation: opts.generation, disk, to: opts.to, overwrite: !!opts.overwrite,
      onStart: (size) => progress.start(`restore ${disk}`, size),
      onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
      onWarning: (m) => out.warn(m),
    });
    progress.stop();
    out.result({ ...result, ...storageReport(repo) }, `restored set ${result.set} generation ${result.generation} disk ${result.disk} to ${result.target}: `
      + `${bytes(result.size)} disk, ${bytes(result.bytesWritten)} written in ${duration(result.durationMs)} (${rate(result.bytesWritten, result.durationMs)}), every chunk verified`);
    out.retries(repo);
  });
}
