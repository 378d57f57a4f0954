/**
 * A batch of VM backups through one provider (what a backup recipe and `backup --vcenter`
 * run): VMs in parallel up to a limit, vmbkp snapshots open at once capped, disks of a VM in parallel,
 * one bandwidth limit over every stream, hooks around each VM, retention after success.
 * One VM's failure never stops the others; the report says what happened to each.
 */
import { describeCause, errorRecord } from '../errors.js';
import { LimitedSource, TransferCounter } from '../engine/limited-source.js';
import { rateLimiter } from '../engine/rate-limit.js';
import type { GenerationManifest, RequestedMode } from '../repository/generation.js';
import { gc } from '../repository/gc.js';
import { prune } from '../repository/prune.js';
import type { Repository } from '../repository/repository.js';
import type { RetentionPolicy } from '../repository/retention.js';
import type { BackupProvider, MachineInventory, MachineTarget, QuiescePolicy } from '../providers/machine-provider.js';
import { Semaphore, mapConcurrently } from '../concurrency.js';
import { type MachineBackupEvent, backupMachine } from './backup-machine.js';
import { type HookCommand, type HookRun, hookError, hookFailed, runHook } from './hooks.js';

/** A VM to back up, or a target that could not be resolved (a missing VM or folder, a clash): reported as failed. */
export type BatchTarget = MachineTarget;

/** What the batch needs of a provider: backups, and the names of sets and of where the machines are. */
export type BatchProvider = BackupProvider & Pick<MachineInventory, 'location' | 'setName'>;

export interface BatchRequest {
  readonly repo: Repository;
  /** Where the repository is, for hooks (VMBKP_REPO). */
  readonly repoLocation: string;
  /**
   * The machines' provider, its disks read through the batch's bandwidth limit (the
   * batch wraps each source it opens).
   */
  readonly provider: BatchProvider;
  readonly targets: readonly BatchTarget[];
  readonly mode: RequestedMode;
  readonly quiesce: QuiescePolicy;
  readonly memory: boolean;
  readonly enableCbt: boolean;
  readonly compressionLevel?: number;
  /** Every N-th backup of a disk reads it whole and checks CBT (backup-set.ts). */
  readonly diffEvery?: number;
  readonly concurrency: { readonly vms: number; readonly disksPerVm: number; readonly snapshots: number };
  /** Bytes per second over all streams together. */
  readonly bandwidth?: number;
  readonly hooks: { readonly pre: readonly HookCommand[]; readonly post: readonly HookCommand[]; readonly timeoutSeconds?: number | undefined };
  /** Environment variables hooks must not inherit: the one holding the vCenter password. */
  readonly secretEnv?: readonly string[];
  readonly retention?: RetentionPolicy;
  readonly onEvent?: (e: BatchEvent) => void;
  /**
   * Cancels the batch: VMs not started are not, and the disks being read fail their next
   * read, so each running backup ends as a failure and cleans up as one (its snapshot removed).
   */
  readonly signal?: AbortSignal;
}

export type BatchEvent =
  | { type: 'vm-start'; vm: string }
  | { type: 'vm-event'; vm: string; event: MachineBackupEvent }
  /** `manifest` is the generation a backup committed; `cause` what a failed one threw (for a front end that reports it as such). */
  | { type: 'vm-done'; vm: string; result: VmResult; manifest?: GenerationManifest; cause?: unknown }
  | { type: 'warning'; message: string };

export interface VmResult {
  readonly vm: string;
  readonly moref?: string;
  readonly set: string;
  readonly ok: boolean;
  readonly generation?: number;
  readonly disks?: readonly {
    readonly name: string; readonly mode: string; readonly size: number; readonly bytesRead: number;
    readonly bytesStored: number; readonly durationMs: number; readonly note?: string;
    /** A periodic full read (--diff-every): bytes the change tracking missed. */
    readonly cbtMissedBytes?: number;
  }[];
  readonly skippedDisks?: readonly { readonly name: string; readonly reason: string }[];
  readonly error?: { readonly code: string; readonly message: string };
  readonly warnings: readonly string[];
  readonly hooks: readonly HookRun[];
  readonly durationMs: number;
}

export interface RetentionResult {
  readonly set: string;
  readonly keep?: readonly number[];
  readonly remove?: readonly number[];
  readonly error?: string;
}

/** What every batch report starts with; `ok` only when every item succeeded. */
export interface BatchTotals {
  readonly started: string;
  readonly finished: string;
  readonly durationMs: number;
  readonly ok: boolean;
  readonly succeeded: number;
  readonly failed: number;
}

export interface BatchReport extends BatchTotals {
  readonly vms: readonly VmResult[];
  readonly retention: readonly RetentionResult[];
  readonly gc?: { readonly bytesFreed: number; readonly packsRemoved: number } | { readonly error: string };
  /** Bytes read from every disk stream, and over the batch's wall time. */
  readonly transferred: { readonly bytes: number; readonly bytesPerSecond: number; readonly limit?: number };
}

interface MachineDisk { readonly name: string; readonly skipped?: string }

function skippedOf(m: GenerationManifest): { name: string; reason: string }[] {
  const disks = (m.machine as { disks?: readonly MachineDisk[] } | undefined)?.disks ?? [];
  return disks.filter((d) => d.skipped).map((d) => ({ name: d.name, reason: d.skipped! }));
}

async function backupOne(req: BatchRequest, target: BatchTarget, provider: BackupProvider, snapshots: Semaphore): Promise<VmResult> {
  const t0 = performance.now();
  const emit = req.onEvent ?? (() => {});
  const set = req.provider.setName(target.name);
  if ('unresolved' in target) {
    return { vm: target.name, set, ok: false, error: { code: 'NOT_FOUND', message: target.unresolved }, warnings: [], hooks: [], durationMs: 0 };
  }
  if (req.signal?.aborted) {
    return { vm: target.name, set, ok: false, error: { code: 'CANCELLED', message: 'not started: the run was cancelled' }, warnings: [], hooks: [], durationMs: 0 };
  }
  const warnings: string[] = [];
  const hooks: HookRun[] = [];
  const hookTimeout = req.hooks.timeoutSeconds !== undefined ? req.hooks.timeoutSeconds * 1000 : undefined;
  const env: Record<string, string> = {
    VMBKP_VM: target.name, ...(target.id !== undefined ? { VMBKP_VM_MOREF: target.id } : {}), VMBKP_SET: set,
    VMBKP_REPO: req.repoLocation, VMBKP_VCENTER: req.provider.location,
  };
  emit({ type: 'vm-start', vm: target.name });

  let manifest: GenerationManifest | undefined;
  let machineId: string | undefined;
  let failure: unknown;
  for (const hook of req.hooks.pre) {
    const run = await runHook('pre', hook, { ...env, VMBKP_PHASE: 'pre' }, hookTimeout, req.secretEnv);
    hooks.push(run);
    if (hookFailed(run)) {
      failure = hookError(run, `VM ${target.name}`);
      break;
    }
  }
  if (failure === undefined) {
    try {
      ({ manifest, machine: { id: machineId } } = await backupMachine({
        repo: req.repo, provider, machine: target.id ?? target.name, mode: req.mode,
        quiesce: req.quiesce, memory: req.memory, enableCbt: req.enableCbt,
        ...(req.compressionLevel !== undefined ? { compressionLevel: req.compressionLevel } : {}),
        ...(req.diffEvery !== undefined ? { diffEvery: req.diffEvery } : {}),
        diskConcurrency: req.concurrency.disksPerVm, excludeDisks: target.excludeDisks, snapshotSlots: snapshots,
        onEvent: (event) => {
          if (event.type === 'warning') warnings.push(event.message);
          emit({ type: 'vm-event', vm: target.name, event });
        },
      }));
    } catch (err) {
      failure = err;
    }
  }
  const postEnv = {
    ...env, VMBKP_PHASE: 'post', VMBKP_RESULT: failure === undefined ? 'success' : 'failure',
    ...(manifest ? { VMBKP_GENERATION: String(manifest.generation) } : {}),
    ...(failure !== undefined ? { VMBKP_ERROR: describeCause(failure) } : {}),
  };
  for (const hook of req.hooks.post) {
    const run = await runHook('post', hook, postEnv, hookTimeout, req.secretEnv);
    hooks.push(run);
    // The backup stands; a failing post hook makes the VM's result a failure all the same,
    // since what the hook was for (a report, a thaw, a copy) did not happen.
    if (hookFailed(run) && failure === undefined) failure = hookError(run, `VM ${target.name}`);
  }

  // A VM named on the command line gets its moref and set from what was backed up.
  const moref = target.id ?? machineId;
  const result: VmResult = {
    vm: target.name, ...(moref !== undefined ? { moref } : {}), set: manifest?.set ?? set, ok: failure === undefined,
    ...(manifest ? {
      generation: manifest.generation,
      disks: manifest.disks.map((d) => ({
        name: d.name, mode: d.mode, size: d.size, bytesRead: d.stats.bytesRead, bytesStored: d.stats.bytesStored,
        durationMs: d.stats.durationMs, ...(d.note ? { note: d.note } : {}),
        ...(d.cbtMissedBytes !== undefined ? { cbtMissedBytes: d.cbtMissedBytes } : {}),
      })),
      skippedDisks: skippedOf(manifest),
    } : {}),
    ...(failure !== undefined ? { error: errorRecord(failure) } : {}),
    warnings, hooks, durationMs: Math.round(performance.now() - t0),
  };
  emit({ type: 'vm-done', vm: target.name, result, ...(manifest ? { manifest } : {}), ...(failure !== undefined ? { cause: failure } : {}) });
  return result;
}

/** Prunes the sets that were backed up, then collects what they alone referenced. */
async function applyRetention(req: BatchRequest, sets: readonly string[]): Promise<Pick<BatchReport, 'retention' | 'gc'>> {
  const policy = req.retention;
  if (!policy || sets.length === 0) return { retention: [] };
  const warn = (message: string) => req.onEvent?.({ type: 'warning', message });
  const retention: RetentionResult[] = [];
  for (const set of sets) {
    try {
      const r = await prune({ repo: req.repo, set, policy, dryRun: false, onWarning: warn });
      retention.push({ set, keep: r.keep.map((k) => k.generation), remove: r.remove });
    } catch (err) {
      retention.push({ set, error: describeCause(err) });
    }
  }
  if (!retention.some((r) => (r.remove?.length ?? 0) > 0)) return { retention };
  try {
    const g = await gc({ repo: req.repo, onWarning: warn });
    return { retention, gc: { bytesFreed: g.bytesFreed, packsRemoved: g.packsRemoved } };
  } catch (err) {
    return { retention, gc: { error: describeCause(err) } };
  }
}

export async function runBackupBatch(req: BatchRequest): Promise<BatchReport> {
  const started = new Date();
  const t0 = performance.now();
  const limiter = rateLimiter(req.bandwidth);
  const counter = new TransferCounter();
  // Every disk the provider opens is read through the batch's limit and counted.
  const provider: BackupProvider = {
    prepareBackup: (m, o, e) => req.provider.prepareBackup(m, o, e),
    survey: (m, o) => req.provider.survey(m, o),
    beginBackup: async (m, o, e) => {
      const b = await req.provider.beginBackup(m, o, e);
      // The machine's files (a VM's .vmx and nvram) came over the same link: counted, too small to limit.
      for (const f of b.files ?? []) counter.bytes += f.data.length;
      return { ...b, disks: b.disks.map((d) => ({ ...d, source: new LimitedSource(d.source, limiter, counter, req.signal) })) };
    },
  };
  const snapshots = new Semaphore(req.concurrency.snapshots);

  const vms = await mapConcurrently(req.targets, req.concurrency.vms, (t) => backupOne(req, t, provider, snapshots));
  const transferMs = performance.now() - t0;
  const succeeded = vms.filter((v) => v.ok);
  const { retention, gc: gcResult } = await applyRetention(req, [...new Set(succeeded.map((v) => v.set))]);

  const retentionOk = retention.every((r) => r.error === undefined) && !(gcResult && 'error' in gcResult);
  return {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    durationMs: Math.round(performance.now() - t0),
    ok: succeeded.length === vms.length && retentionOk,
    succeeded: succeeded.length,
    failed: vms.length - succeeded.length,
    vms,
    retention,
    ...(gcResult ? { gc: gcResult } : {}),
    transferred: {
      bytes: counter.bytes,
      bytesPerSecond: Math.round(counter.bytes / Math.max(transferMs / 1000, 0.001)),
      ...(req.bandwidth !== undefined ? { limit: req.bandwidth } : {}),
    },
  };
}
