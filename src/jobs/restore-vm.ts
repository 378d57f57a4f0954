/**
 * A VM backup restored as a VM: a new VM made from the generation's stored
 * configuration (CreateVM_Task with its controllers, disks and NICs), each disk written
 * from the repository and read back against the generation's digests, then powered on
 * when asked. If anything fails after CreateVM_Task, the new VM is destroyed, so no
 * half-made VM is left behind. With `overwrite`, an existing powered-off VM of that
 * name with the same disks gets its disks written instead (it is never destroyed).
 */
import { AlreadyExistsError, InputError, RepositoryDamagedError } from '../errors.js';
import type { Progress } from '../engine/backup-disk.js';
import { ChunkPool } from '../repository/chunk-pool.js';
import { BlobCodec } from '../repository/compression.js';
import { type DiskIndex, loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import type { OpenVmDisk } from '../sources/vsphere-target.js';
import { listVms } from '../vsphere/inventory.js';
import type { VsphereSession } from '../vsphere/session.js';
import type { VsphereMachine } from './backup-vm.js';
import { resolveGeneration } from './resolve.js';
import { createAndRestore } from './restore-vm-create.js';
import { overwriteVm } from './restore-vm-overwrite.js';
import { removeIncompleteRestores } from './restore-vm-unfinished.js';
import { storedMachine } from './stored-machine.js';

export type VmRestoreEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'disk-start'; disk: string; phase: 'write' | 'verify'; bytesTotal: number }
  | { type: 'progress'; disk: string; phase: 'write' | 'verify'; progress: Progress }
  | { type: 'disk-done'; disk: string };

export interface VmRestoreRequest {
  readonly repo: Repository;
  readonly session: VsphereSession;
  readonly set: string;
  /** A generation number, or "latest". */
  readonly generation: string;
  /** The new VM's name (with `overwrite`: the existing VM whose disks are written). */
  readonly name: string;
  /** Default: the datastore of the original VM's configuration file. */
  readonly datastore?: string | undefined;
  readonly host?: string | undefined;
  /** Inventory path of a VM folder. */
  readonly folder?: string | undefined;
  readonly resourcePool?: string | undefined;
  /** Old network (name, or distributed port group key) → new network name; unmapped NICs keep theirs. */
  readonly network?: Readonly<Record<string, string>> | undefined;
  readonly powerOn?: boolean | undefined;
  /** Keep BIOS and instance UUIDs and MAC addresses (default: new ones). */
  readonly keepIdentity?: boolean | undefined;
  /** Write the disks of an existing powered-off VM of that name. */
  readonly overwrite?: boolean | undefined;
  /** The transport: how a disk of the VM becomes a target. */
  readonly openDisk: OpenVmDisk;
  /** The transport writes every byte of a disk (https): a thin disk then takes its capacity on the datastore. */
  readonly writesWholeDisk: boolean;
  readonly workers?: number | undefined;
  /** Disks written (and read back) at once; default 1. */
  readonly diskConcurrency?: number | undefined;
  /** Stops the restore at the next write (SIGINT): a VM it created is then destroyed like after any failure. */
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: (e: VmRestoreEvent) => void;
}

export interface RestoredDisk {
  /** The disk's name in the generation (its key in the backed-up VM). */
  readonly name: string;
  /** Its key in the restored VM. */
  readonly key: number;
  readonly fileName: string;
  readonly size: number;
  readonly bytesWritten: number;
  readonly writeMs: number;
  readonly verifyMs: number;
}

export interface VmRestoreResult {
  readonly set: string;
  readonly generation: number;
  readonly vm: string;
  readonly moref: string;
  /** False when `overwrite` wrote the disks of an existing VM. */
  readonly created: boolean;
  readonly poweredOn: boolean;
  readonly identity: 'new' | 'kept';
  readonly disks: readonly RestoredDisk[];
  readonly durationMs: number;
}
export interface DiskPlan {
  readonly stored: VsphereMachine['disks'][number];
  readonly index: DiskIndex;
}

export interface RestoreContext {
  readonly req: VmRestoreRequest;
  readonly emit: (e: VmRestoreEvent) => void;
  readonly warn: (m: string) => void;
  readonly pool: ChunkPool;
  readonly gen: string;
  readonly machine: VsphereMachine;
  readonly plans: readonly DiskPlan[];
}

export type RestoreOutcome = Omit<VmRestoreResult, 'set' | 'generation' | 'durationMs'>;

export async function restoreVm(req: VmRestoreRequest): Promise<VmRestoreResult> {
  const t0 = performance.now();
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  const lock = await RepositoryLock.acquire(req.repo.backend, 'shared', `restore of ${req.set}`, warn);
  try {
    const manifest = await resolveGeneration(req.repo, req.set, req.generation);
    const machine = storedMachine(manifest);
    const gen = `set ${manifest.set} generation ${manifest.generation}`;
    for (const d of machine.disks.filter((x) => x.skipped)) {
      warn(`disk ${d.key} (${d.label}) of ${gen} was not backed up (${d.skipped}): the restored VM does not get it`);
    }
    await req.repo.loadIndex();
    const codec = new BlobCodec();
    const plans: DiskPlan[] = [];
    for (const stored of machine.disks.filter((x) => !x.skipped)) {
      const record = manifest.disks.find((r) => r.name === stored.name);
      if (!record) throw new RepositoryDamagedError(`${gen} describes disk ${stored.name} of the VM but holds no such disk`);
      if (record.size !== stored.capacity) throw new RepositoryDamagedError(`${gen}: disk ${stored.name} holds ${record.size} bytes, the VM's disk has ${stored.capacity}`);
      plans.push({ stored, index: await loadDiskIndex(req.repo, record, codec, `restoring ${gen} disk ${stored.name}`) });
    }

    const existing = await removeIncompleteRestores(req, (await listVms(req.session)).filter((v) => v.name === req.name), warn);
    if (existing.length > 0 && !req.overwrite) {
      throw new AlreadyExistsError(`restoring ${gen} as VM ${req.name} refused: a VM of that name exists on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}); choose another --name, or pass --overwrite to write over its disks`);
    }
    if (existing.length > 1) throw new InputError(`VM name ${req.name} is ambiguous on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}): --overwrite needs one VM`);

    const pool = new ChunkPool(req.workers);
    try {
      const ctx: RestoreContext = { req, emit, warn, pool, gen, machine, plans };
      const result = existing.length === 1 ? await overwriteVm(ctx, existing[0]!) : await createAndRestore(ctx);
      return { ...result, set: manifest.set, generation: manifest.generation, durationMs: Math.round(performance.now() - t0) };
    } finally {
      await pool.close();
    }
  } finally {
    await lock.release();
  }
}
