/**
 * A VM backup restored as a VM: a new VM made from the generation's stored
 * configuration (CreateVM_Task with its controllers, disks and NICs), each disk written
 * from the repository and read back against the generation's digests, then powered on
 * when asked. If anything fails after CreateVM_Task, the new VM is destroyed, so no
 * half-made VM is left behind. With `overwrite`, an existing powered-off VM of that
 * name with the same disks gets its disks written instead (it is never destroyed).
 */
import { AlreadyExistsError, InputError, RepositoryDamagedError } from '../errors.js';
import { ChunkPool } from '../engine/chunk-pool.js';
import { BlobCodec } from '../repository/compression.js';
import { loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import { listVms } from '../vsphere/inventory.js';
import { resolveGeneration } from './resolve.js';
import type { DiskPlan, RestoreContext, VmRestoreRequest, VmRestoreResult } from './restore-vm-context.js';
import { createAndRestore } from './restore-vm-create.js';
import { overwriteVm } from './restore-vm-overwrite.js';
import { removeIncompleteRestores } from './restore-vm-unfinished.js';
import { storedMachine } from './stored-machine.js';

export type { RestoredDisk, VmRestoreEvent, VmRestoreRequest, VmRestoreResult } from './restore-vm-context.js';

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
