/** `vmbkp restore --vcenter … --set VM --name NEW`: a VM backup restored as a VM. */
import { UsageError } from '../errors.js';
import { type VmRestoreResult, restoreVm } from '../jobs/restore-vm.js';
import type { OpenVmDisk } from '../sources/vsphere-target.js';
import { openUploadTarget } from '../sources/vsphere-upload.js';
import { openVddkTarget } from '../sources/vsphere-vddk-target.js';
import { splitAssignment } from './commands/backup.js';
import { type GlobalOptions, Output, openRepository, wholeNumber } from './context.js';
import { bytes, duration, rate, table } from './format.js';
import { combinedProgress, progressSink } from './progress.js';
import { stopOnSignals } from './stop-signals.js';
import { type VcenterConnection, type VcenterOptions, connect, vcenterConnection, vddkOptions } from './vcenter.js';

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
}

/** How the disks of a restored VM are written: upload through /folder, or a writable nbdkit vddk. */
export async function vmDiskOpener(conn: VcenterConnection, transport: string,
  vddk: { libdir?: string | undefined; transports?: string | undefined } = {}): Promise<OpenVmDisk> {
  if (transport !== 'vddk') return openUploadTarget;
  const opts = await vddkOptions(conn, vddk);
  return (d) => openVddkTarget(d, opts);
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

export async function runVmRestore(opts: VmRestoreOptions): Promise<void> {
  const out = new Output(!!opts.json);
  if (!opts.name) throw new UsageError('--name is required with --vcenter: the name of the restored VM');
  if (opts.transport !== 'https' && opts.transport !== 'vddk') throw new UsageError(`--transport ${JSON.stringify(opts.transport)} is invalid: use https or vddk`);
  const network: Record<string, string> = {};
  for (const arg of opts.network) {
    const [from, to] = splitAssignment(arg, '--network');
    if (from in network) throw new UsageError(`--network maps ${JSON.stringify(from)} twice`);
    network[from] = to;
  }
  const disksAtOnce = opts.disksAtOnce === undefined ? 1 : wholeNumber(opts.disksAtOnce, '--disks-at-once');
  if (disksAtOnce < 1) throw new UsageError('--disks-at-once needs at least 1');
  const conn = await vcenterConnection(opts);
  const repo = await openRepository(opts);
  const session = await connect(conn);
  const sink = progressSink(out.json);
  const progress = disksAtOnce > 1 ? combinedProgress(sink, `${opts.name} disks`) : undefined;
  // A first Ctrl-C (or SIGTERM) stops the restore cleanly: an incomplete new VM is destroyed. A second one kills.
  const stop = stopOnSignals((sig) => {
    sink.stop();
    out.warn(`${sig}: stopping the restore${opts.overwrite ? '' : '; an incomplete new VM is removed'}`);
  });
  try {
    const openDisk = await vmDiskOpener(conn, opts.transport, { libdir: opts.vddkLibdir, transports: opts.vddkTransports });
    const result = await restoreVm({
      repo, session, set: opts.set, generation: opts.generation, name: opts.name,
      datastore: opts.datastore, host: opts.host, folder: opts.folder, resourcePool: opts.resourcePool,
      network: opts.network.length > 0 ? network : undefined,
      powerOn: !!opts.powerOn, keepIdentity: !!opts.keepIdentity, overwrite: !!opts.overwrite,
      openDisk, writesWholeDisk: opts.transport === 'https', signal: stop.signal, diskConcurrency: disksAtOnce,
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
    await session.close();
  }
}
