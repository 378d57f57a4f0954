/**
 * Online backups of vSphere VMs: the one batch behind `backup --vcenter --vm …` and a
 * backup recipe. Both give VMs and a policy; the command line takes the VMs as named, one
 * at a time, with no hooks or retention, while a recipe resolves its targets against the
 * inventory and sets its own limits. Both get the same report (jobs/backup-batch.ts).
 */
import { type BatchEvent, type BatchReport, type BatchRequest, type BatchTarget, runBackupBatch } from '../jobs/backup-batch.js';
import type { RequestedMode } from '../repository/generation.js';
import type { Targets } from '../recipe/index.js';
import { resolveTargets } from '../recipe/resolve-targets.js';
import type { MachineInventory, QuiescePolicy } from '../providers/machine-provider.js';
import { VsphereProvider } from '../providers/vsphere/provider.js';
import { type Transport, type VddkSettings, snapshotDiskOpener } from '../providers/vsphere/transport.js';
import type { VcenterJob } from './vcenter.js';

export type { BatchEvent, BatchReport, BatchTarget, VmResult } from '../jobs/backup-batch.js';

/** How each VM is backed up. */
export interface VmBackupPolicy {
  readonly mode: RequestedMode;
  readonly quiesce: QuiescePolicy;
  readonly memory: boolean;
  readonly enableCbt: boolean;
  readonly compressionLevel?: number | undefined;
  /** Every N-th backup of a disk reads it whole and reports what CBT missed. */
  readonly diffEvery?: number | undefined;
  readonly transport: Transport;
  readonly vddk?: VddkSettings | undefined;
}

/** VMs as named (a name or a moref each, found when its backup starts), or a recipe's targets. */
export type VmSelection =
  | { readonly kind: 'named'; readonly vms: readonly string[] }
  | { readonly kind: 'recipe'; readonly targets: Targets };

export interface BackupVmsRequest extends Partial<Pick<BatchRequest, 'bandwidth' | 'secretEnv' | 'retention' | 'hooks' | 'concurrency' | 'signal'>> {
  readonly job: VcenterJob;
  readonly vms: VmSelection;
  readonly policy: VmBackupPolicy;
  readonly onEvent?: (e: BatchEvent) => void;
}

/** One VM at a time, one disk at a time: what `backup --vcenter` has always done. */
const ONE_AT_A_TIME = { vms: 1, disksPerVm: 1, snapshots: 1 } as const;

export async function selectTargets(provider: MachineInventory, vms: VmSelection): Promise<BatchTarget[]> {
  if (vms.kind === 'recipe') return resolveTargets(provider, vms.targets);
  return vms.vms.map((name) => ({ name, excludeDisks: [] }));
}

export async function backupVms(req: BackupVmsRequest): Promise<BatchReport> {
  const { job, policy } = req;
  // Targets first, then the transport (vddk asks the server for its thumbprint).
  const targets = await selectTargets(new VsphereProvider(job.session), req.vms);
  const provider = new VsphereProvider(job.session, { openDisk: await snapshotDiskOpener(job.connection, policy.transport, policy.vddk) });
  return runBackupBatch({
    repo: job.repo, repoLocation: job.repo.location, provider, targets,
    mode: policy.mode, quiesce: policy.quiesce, memory: policy.memory, enableCbt: policy.enableCbt,
    ...(policy.compressionLevel !== undefined ? { compressionLevel: policy.compressionLevel } : {}),
    ...(policy.diffEvery !== undefined ? { diffEvery: policy.diffEvery } : {}),
    concurrency: req.concurrency ?? ONE_AT_A_TIME,
    ...(req.bandwidth !== undefined ? { bandwidth: req.bandwidth } : {}),
    hooks: req.hooks ?? { pre: [], post: [] },
    ...(req.secretEnv !== undefined ? { secretEnv: req.secretEnv } : {}),
    ...(req.retention !== undefined ? { retention: req.retention } : {}),
    ...(req.onEvent ? { onEvent: req.onEvent } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  });
}
