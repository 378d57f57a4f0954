/** `vmbkp restore --vcenter … --set VM --name NEW`: a VM backup restored as a VM. */
import { type VmRestorePlan, type VmRestoreResult, planVmRestoreRun, restoreVmRun } from '../app/restore-vm.js';
import { isTransport, startVcenterJob, vcenterConnection } from '../app/vcenter.js';
import { InputError, UsageError } from '../errors.js';
import { splitAssignment } from './commands/backup.js';
import { type GlobalOptions, Output, openRepository, wholeNumber } from './context.js';
import { bytes, duration, rate, table } from './format.js';
import { combinedProgress, progressSink } from './progress.js';
import { stopOnSignals } from './stop-signals.js';
import { type VcenterOptions, vcenterLogin } from './vcenter.js';

export interface VmRestoreOptions extends GlobalOptions, VcenterOptions {
  set: string;
  generation: string;
  name?: string;
  host?: string;
  datastore?: string;
  folder?: string;
  resourcePool?: string;
  network: string[];
  powerOn?: boolean;
  keepIdentity?: boolean;
  overwrite?: boolean;
  transport: string;
  vddkLibdir?: string;
  vddkTransports?: string;
  disksAtOnce?: string;
  dryRun?: boolean;
}

export function restoreSummary(r: VmRestoreResult): string {
  const total = r.disks.reduce((n, d) => n + d.size, 0);
  const state = [r.created ? 'created' : 'disks overwritten', r.identity === 'kept' ? 'identity kept' : 'new UUIDs and MAC addresses', r.poweredOn ? 'powered on' : 'powered off'];
  return [
    `restored set ${r.set} generation ${r.generation} as VM ${r.vm} (${r.moref}): ${state.join(', ')}`,
    table(['disk', 'key', 'file', 'size', 'written', 'write', 'verify'], r.disks.map((d) => [
      d.name, String(d.key), d.fileName, bytes(d.size), bytes(d.bytesWritten), `${duration(d.writeMs)} (${rate(d.size, d.writeMs)})`, duration(d.verifyMs),
    ])),
    `every disk read back and checked against the generation's digests; ${bytes(total)} in ${duration(r.durationMs)} (${rate(total, r.durationMs)})`,
  ].join('\n');
}

function planSummary(p: VmRestorePlan & { set: string; generation: number }, powerOn: boolean): string {
  const where = p.action === 'overwrite' ? `over the disks of the existing VM ${p.vm} (${p.existing})`
    : `as a new VM ${p.vm}${p.datastore ? ` on datastore ${p.datastore}` : ''}${p.host ? `, host ${p.host}` : ''}${p.folder ? `, folder ${p.folder}` : ''}`;
  return [
    `dry run, nothing was changed: set ${p.set} generation ${p.generation} would be restored ${where}, writing ${bytes(p.bytesToWrite)}${powerOn ? ', then powered on' : ''}`,
    ...(p.existing && p.action === 'create' ? [`a VM named ${p.vm} exists (${p.existing})`] : []),
    ...p.removesUnfinished.map((m) => `would first remove ${m}: an unfinished restore whose process is gone`),
    table(['disk', 'label', 'capacity', 'write'], p.disks.map((d) => [d.name, d.label, bytes(d.capacity), bytes(d.bytesToWrite)])),
    ...(p.networks.length ? [table(['NIC', 'network', 'restored on'], p.networks.map((n) => [n.nic, n.from, n.to]))] : []),
    ...(p.refused ? [`refused: ${p.refused}`] : []),
  ].join('\n');
}

export async function runVmRestore(opts: VmRestoreOptions): Promise<void> {
  const out = new Output(!!opts.json);
  if (!opts.name) throw new UsageError('--name is required with --vcenter: the name of the restored VM');
  const transport = opts.transport;
  if (!isTransport(transport)) throw new UsageError(`--transport ${JSON.stringify(opts.transport)} is invalid: use https, nfc or vddk`);
  const network: Record<string, string> = {};
  for (const arg of opts.network) {
    const [from, to] = splitAssignment(arg, '--network');
    if (from in network) throw new UsageError(`--network maps ${JSON.stringify(from)} twice`);
    network[from] = to;
  }
  const disksAtOnce = opts.disksAtOnce === undefined ? 1 : wholeNumber(opts.disksAtOnce, '--disks-at-once');
  if (disksAtOnce < 1) throw new UsageError('--disks-at-once needs at least 1');
  const name = opts.name;
  const connection = await vcenterConnection(await vcenterLogin(opts, 'a VM restore (--name)'));
  const job = await startVcenterJob(connection, await openRepository(opts));
  const spec = {
    set: opts.set, generation: opts.generation, name,
    datastore: opts.datastore, host: opts.host, folder: opts.folder, resourcePool: opts.resourcePool,
    network: opts.network.length > 0 ? network : undefined,
    powerOn: !!opts.powerOn, keepIdentity: !!opts.keepIdentity, overwrite: !!opts.overwrite,
  };
  if (opts.dryRun) {
    try {
      const plan = await planVmRestoreRun(job, spec, transport);
      out.result(plan, planSummary(plan, !!opts.powerOn));
      if (plan.refused) throw new InputError(`the restore would be refused: ${plan.refused}`);
    } finally {
      await job.close();
    }
    return;
  }
  const sink = progressSink(out.json);
  const progress = disksAtOnce > 1 ? combinedProgress(sink, `${opts.name} disks`) : undefined;
  // A first Ctrl-C (or SIGTERM) stops the restore cleanly: an incomplete new VM is destroyed. A second one kills.
  const stop = stopOnSignals((sig) => {
    sink.stop();
    out.warn(`${sig}: stopping the restore${opts.overwrite ? '' : '; an incomplete new VM is removed'}`);
  });
  try {
    const result = await restoreVmRun({
      job, transport, vddk: { libdir: opts.vddkLibdir, transports: opts.vddkTransports }, disksAtOnce, signal: stop.signal,
      spec,
      onEvent: (e) => {
        if (e.type === 'warning') { sink.stop(); out.warn(e.message); } else if (progress) {
          // Disks in parallel: one bar over every disk's current phase.
          if (e.type === 'disk-start') progress.begin(`${e.disk} ${e.phase}`, e.bytesTotal);
          else if (e.type === 'progress') progress.update(`${e.disk} ${e.phase}`, e.progress.bytesDone);
        } else if (e.type === 'disk-start') sink.start(`${e.disk} (${e.phase})`, e.bytesTotal);
        else if (e.type === 'progress') sink.update(e.progress.bytesDone, e.progress.bytesTotal);
        else if (e.type === 'disk-done') sink.stop();
      },
    });
    sink.stop();
    out.result(result, restoreSummary(result));
  } finally {
    stop.dispose();
    sink.stop();
    await job.close();
  }
}
