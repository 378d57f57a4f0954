/** `vmbkp backup --vcenter … --vm NAME …`: online backups of vSphere VMs, one generation each. */
import { type BatchReport, backupVms } from '../app/backup-vms.js';
import { generationSummary } from '../app/generation-summary.js';
import { storageReport } from '../app/repository.js';
import { type VmPlan, planVmBackups } from '../app/dry-run.js';
import { type VcenterJob, isTransport, startVcenterJob, vcenterConnection } from '../app/vcenter.js';
import { PartialFailureError, UsageError, describeCause, errorRecord } from '../errors.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import type { QuiescePolicy } from '../providers/machine-provider.js';
import { type GlobalOptions, Output, openRepository } from './context.js';
import { bytes } from './format.js';
import { progressSink } from './progress.js';
import { backupPlanTable } from './run-backup.js';
import { type VcenterOptions, vcenterLogin } from './vcenter.js';

export interface VmBackupOptions extends GlobalOptions, VcenterOptions {
  vm: string[];
  transport: string;
  /** true (bare --quiesce) or the value given (--quiesce=required). */
  quiesce?: boolean | string;
  memory?: boolean;
  enableCbt?: boolean;
  vddkLibdir?: string;
  vddkTransports?: string;
  dryRun?: boolean;
}

function quiescePolicy(q: boolean | string | undefined): QuiescePolicy {
  if (q === undefined || typeof q === 'boolean') return !!q;
  if (q === 'required') return q;
  throw new UsageError(`--quiesce ${JSON.stringify(q)} is invalid: give --quiesce alone, or --quiesce=required`);
}

/**
 * --dry-run: each VM's disks, the mode each would get and their capacity (the most the
 * backup reads: what is allocated is known only from a snapshot). Read-only calls only.
 */
async function showVmBackupPlan(job: VcenterJob, opts: VmBackupOptions, mode: RequestedMode, diffEvery: number | undefined, out: Output): Promise<void> {
  const plan = await planVmBackups(job, opts.vm, { mode, enableCbt: !!opts.enableCbt, diffEvery });
  const planned = plan.vms.filter((p): p is VmPlan => !('error' in p));
  const capacity = planned.reduce((n, p) => n + p.disks.filter((d) => !d.skipped).reduce((m, d) => m + d.capacity, 0), 0);
  out.result({ dryRun: true, vms: plan.vms, bytesToReadAtMost: capacity },
    [`dry run, nothing was changed: ${planned.length} of ${plan.vms.length} VMs would be backed up, reading at most ${bytes(capacity)} (their disks' capacity)`, '',
      backupPlanTable(plan.vms)].join('\n'));
  if (plan.failure) throw plan.failure;
}

/** What this command shows of each VM: the generation it made, or what the backup threw. */
interface Shown { readonly vm: string; readonly manifest?: GenerationManifest; readonly error?: unknown }

export async function runVmBackups(opts: VmBackupOptions, mode: RequestedMode, level: number | undefined,
  summarize: (m: GenerationManifest) => string, diffEvery?: number): Promise<void> {
  const out = new Output(!!opts.json);
  if (opts.vm.length === 0) throw new UsageError('--vm is required with --vcenter');
  const transport = opts.transport;
  if (!isTransport(transport)) throw new UsageError(`--transport ${JSON.stringify(transport)} is invalid: use https, nfc or vddk`);
  const connection = await vcenterConnection(await vcenterLogin(opts, 'a VM backup (--vm)'));
  const job = await startVcenterJob(connection, await openRepository(opts));
  if (opts.dryRun) {
    try {
      await showVmBackupPlan(job, opts, mode, diffEvery, out);
    } finally {
      await job.close();
    }
    return;
  }
  // The batch's report lists the VMs in the order given; the events bring what this command shows of each.
  const done = new Map<string, Shown[]>();
  let report: BatchReport;
  try {
    const progress = progressSink(out.json);
    report = await backupVms({
      job, vms: { kind: 'named', vms: opts.vm },
      policy: {
        mode, quiesce: quiescePolicy(opts.quiesce), memory: !!opts.memory, enableCbt: !!opts.enableCbt, compressionLevel: level, diffEvery,
        transport, vddk: { libdir: opts.vddkLibdir, transports: opts.vddkTransports },
      },
      onEvent: (b) => {
        if (b.type === 'vm-event') {
          const e = b.event;
          if (e.type === 'disk-start') {
            out.step(`VM ${b.vm} disk ${e.disk}: ${e.mode} backup${e.note ? ` (${e.note})` : ''}`);
            progress.start(`${b.vm} ${e.disk} (${e.mode})`, e.bytesTotal);
          }
          else if (e.type === 'progress') progress.update(e.progress.bytesDone, e.progress.bytesTotal);
          else if (e.type === 'disk-done') progress.stop();
          else if (e.type === 'warning') { progress.stop(); out.warn(e.message); }
        } else if (b.type === 'vm-done') {
          progress.stop();
          done.set(b.vm, [...(done.get(b.vm) ?? []), b.manifest ? { vm: b.vm, manifest: b.manifest } : { vm: b.vm, error: b.cause }]);
          if (!b.result.ok && opts.vm.length > 1) out.warn(`backup of VM ${b.vm} failed: ${describeCause(b.cause)}`);
        }
      },
    });
  } finally {
    await job.close();
  }

  const shown = report.vms.map((r) => done.get(r.vm)!.shift()!);
  const failed = shown.filter((r) => !r.manifest);
  if (opts.vm.length === 1 && failed.length === 1) throw failed[0]!.error;
  const failedJson = (r: Shown) => {
    const { code, message } = errorRecord(r.error);
    return { vm: r.vm, ok: false, error: message, code };
  };
  out.result(
    { vms: shown.map((r) => r.manifest ? { vm: r.vm, ok: true, generation: generationSummary(r.manifest) } : failedJson(r)), ...storageReport(job.repo) },
    shown.map((r) => r.manifest ? summarize(r.manifest) : `VM ${r.vm}: failed: ${describeCause(r.error)}`).join('\n\n'),
  );
  out.retries(job.repo);
  if (failed.length === shown.length) throw failed[0]!.error;
  if (failed.length > 0) throw new PartialFailureError(`${failed.length} of ${shown.length} VMs failed: ${failed.map((f) => f.vm).join(', ')}`);
}
