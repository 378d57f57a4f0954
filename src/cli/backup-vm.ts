/** `vmbkp backup --vcenter … --vm NAME …`: online backups of vSphere VMs, one generation each. */
import { PartialFailureError, UsageError, type VmbkpError, describeCause, errorRecord } from '../errors.js';
import { backupVm, type OpenDisk } from '../jobs/backup-vm.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import { openHttpsDisk } from '../sources/vsphere-https.js';
import { openVddkDisk } from '../sources/vsphere-vddk.js';
import { type GlobalOptions, Output, openRepository } from './context.js';
import { progressSink } from './progress.js';
import { generationSummary } from './summary.js';
import { type VcenterConnection, type VcenterOptions, connect, vcenterConnection, vddkOptions } from './vcenter.js';

export interface VmBackupOptions extends GlobalOptions, VcenterOptions {
  vm: string[];
  transport: string;
  quiesce?: boolean;
  memory?: boolean;
  enableCbt?: boolean;
  vddkLibdir?: string;
  vddkTransports?: string;
}

export interface VmResult {
  readonly vm: string;
  readonly manifest?: GenerationManifest;
  readonly error?: VmbkpError | Error;
}

/** How snapshot disks are read: the https transport, or nbdkit's vddk plugin. */
export async function diskOpener(conn: VcenterConnection, transport: string,
  vddk: { libdir?: string | undefined; transports?: string | undefined } = {}): Promise<OpenDisk> {
  if (transport !== 'vddk') return openHttpsDisk;
  const opts = await vddkOptions(conn, vddk);
  return (d) => openVddkDisk(d, opts);
}

export async function runVmBackups(opts: VmBackupOptions, mode: RequestedMode, level: number | undefined,
  summarize: (m: GenerationManifest) => string): Promise<void> {
  const out = new Output(!!opts.json);
  if (opts.vm.length === 0) throw new UsageError('--vm is required with --vcenter');
  if (opts.transport !== 'https' && opts.transport !== 'vddk') throw new UsageError(`--transport ${JSON.stringify(opts.transport)} is invalid: use https or vddk`);
  const conn = await vcenterConnection(opts);
  const repo = await openRepository(opts);
  const session = await connect(conn);
  const results: VmResult[] = [];
  try {
    const openDisk = await diskOpener(conn, opts.transport, { libdir: opts.vddkLibdir, transports: opts.vddkTransports });
    const progress = progressSink(out.json);
    for (const vm of opts.vm) {
      try {
        const manifest = await backupVm({
          repo, session, vm, mode, openDisk,
          quiesce: !!opts.quiesce, memory: !!opts.memory, enableCbt: !!opts.enableCbt,
          ...(level !== undefined ? { compressionLevel: level } : {}),
          onEvent: (e) => {
            if (e.type === 'disk-start') progress.start(`${vm} ${e.disk} (${e.mode})`, e.bytesTotal);
            else if (e.type === 'progress') progress.update(e.progress.bytesDone, e.progress.bytesTotal);
            else if (e.type === 'disk-done') progress.stop();
            else if (e.type === 'warning') { progress.stop(); out.warn(e.message); }
          },
        });
        progress.stop();
        results.push({ vm, manifest });
      } catch (err) {
        progress.stop();
        results.push({ vm, error: err instanceof Error ? err : new Error(String(err)) });
        if (opts.vm.length > 1) out.warn(`backup of VM ${vm} failed: ${describeCause(err)}`);
      }
    }
  } finally {
    await session.close();
  }

  const failed = results.filter((r) => r.error);
  if (opts.vm.length === 1 && failed.length === 1) throw failed[0]!.error;
  const failedJson = (r: VmResult) => {
    const { code, message } = errorRecord(r.error);
    return { vm: r.vm, ok: false, error: message, code };
  };
  out.result(
    { vms: results.map((r) => r.manifest ? { vm: r.vm, ok: true, generation: generationSummary(r.manifest) } : failedJson(r)) },
    results.map((r) => r.manifest ? summarize(r.manifest) : `VM ${r.vm}: failed: ${describeCause(r.error)}`).join('\n\n'),
  );
  if (failed.length === results.length) throw failed[0]!.error;
  if (failed.length > 0) throw new PartialFailureError(`${failed.length} of ${results.length} VMs failed: ${failed.map((f) => f.vm).join(', ')}`);
}
