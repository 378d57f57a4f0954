/**
 * The disks of a restored VM: found among the disks it was created with, then each
 * written from the repository and read back against the generation's digests.
 */
import { IoError } from '../../errors.js';
import type { Progress } from '../../engine/backup-disk.js';
import { restoreDisk } from '../../engine/restore-disk.js';
import { restoreDiskInOrder } from '../../engine/restore-ordered.js';
import { verifyWritten } from '../../engine/verify-written.js';
import type { DiskIndex } from '../../repository/disk-index.js';
import type { VmDiskTarget } from '../../sources/vsphere-target.js';
import { storageControllers } from '../../vsphere/create-vm.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { type VirtualDiskInfo, disksOf } from '../../vsphere/vm.js';
import type { XmlNode } from '../../vsphere/xml.js';
import { mapConcurrently } from '../../concurrency.js';
import type { DiskPlan, RestoreContext, RestoredDisk } from './restore-vm-context.js';

/** Bytes of a disk that hold data (what a thin disk needs when only data is written). */
export function dataBytes(index: DiskIndex): number {
  let n = 0;
  for (let i = 0; i < index.count; i++) if (!index.isZero(i)) n += index.chunkLength(i);
  return n;
}

export function checkInterrupted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new IoError(`${what} was interrupted (${String(signal.reason ?? 'aborted')})`);
}

/** The target, failing its next call once `signal` fires. */
function interruptible(t: VmDiskTarget, signal: AbortSignal, what: string): VmDiskTarget {
  const check = () => checkInterrupted(signal, `restoring ${what}`);
  return {
    description: t.description, size: t.size, zeroed: t.zeroed, ...(t.sequential ? { sequential: true } : {}),
    write: async (o, d) => { check(); await t.write(o, d); },
    zero: async (o, l) => { check(); await t.zero(o, l); },
    flush: async () => { check(); await t.flush(); },
    readBack: async (o, l, into) => { check(); await t.readBack(o, l, into); },
    close: () => t.close(),
    ...(t.discard ? { discard: () => t.discard!() } : {}),
  };
}

/** The new VM's disks in the order of the plans: same controller type and bus, same unit, same capacity. */
export function matchCreatedDisks(ctx: RestoreContext, stored: XmlNode, current: XmlNode | undefined, vm: VmRef): VirtualDiskInfo[] {
  const oldCtl = new Map(storageControllers(stored).map((c) => [c.key, c]));
  const newCtl = storageControllers(current);
  const created = disksOf(current);
  return ctx.plans.map((p) => {
    const c = oldCtl.get(p.stored.controllerKey);
    const ctl = c ? newCtl.find((n) => n.type === c.type && n.busNumber === c.busNumber) : undefined;
    const d = ctl ? created.find((x) => x.controllerKey === ctl.key && x.unitNumber === p.stored.unitNumber) : undefined;
    const where = `${c?.type ?? `controller ${p.stored.controllerKey}`} ${c?.busNumber ?? '?'}:${p.stored.unitNumber}`;
    if (!d) throw new IoError(`VM ${vm.name} was created without the disk at ${where} (disk ${p.stored.name} of ${ctx.gen})`);
    if (d.capacity !== p.stored.capacity) throw new IoError(`VM ${vm.name}'s disk at ${where} has ${d.capacity} bytes, disk ${p.stored.name} of ${ctx.gen} has ${p.stored.capacity}`);
    return d;
  });
}

/**
 * Writes and checks every planned disk, `req.diskConcurrency` at once; results in plan
 * order. The first failure stops the other disks at their next write, so the caller can
 * clean up without waiting for them to finish.
 */
export async function writeDisks(ctx: RestoreContext, vm: VmRef, targets: readonly VirtualDiskInfo[], datacenterPath: string): Promise<RestoredDisk[]> {
  const failed = new AbortController();
  const signal = ctx.req.signal ? AbortSignal.any([ctx.req.signal, failed.signal]) : failed.signal;
  return mapConcurrently(ctx.plans, ctx.req.diskConcurrency ?? 1, async (p, i) => {
    try {
      return await writeDisk(ctx, vm, p, targets[i]!, datacenterPath, signal);
    } catch (err) {
      failed.abort('another disk of the restore failed');
      throw err;
    }
  });
}

async function writeDisk(ctx: RestoreContext, vm: VmRef, p: DiskPlan, disk: VirtualDiskInfo, datacenterPath: string,
  signal: AbortSignal): Promise<RestoredDisk> {
  const { req, emit, pool } = ctx;
  const what = `disk ${disk.key} of VM ${vm.name} (disk ${p.stored.name} of ${ctx.gen})`;
  const onProgress = (phase: 'write' | 'verify') => (progress: Progress) => emit({ type: 'progress', disk: p.stored.name, phase, progress });
  emit({ type: 'disk-start', disk: p.stored.name, phase: 'write', bytesTotal: dataBytes(p.index) });
  checkInterrupted(signal, `restoring ${what}`);
  const target = interruptible(await req.openDisk({ session: req.session, vm, disk, datacenterPath }), signal, what);
  try {
    const tw = performance.now();
    const restore = target.sequential ? restoreDiskInOrder : restoreDisk;
    const { bytesWritten } = await restore({ repo: req.repo, pool, index: p.index, target, what, onProgress: onProgress('write') });
    const writeMs = Math.round(performance.now() - tw);
    emit({ type: 'disk-start', disk: p.stored.name, phase: 'verify', bytesTotal: p.index.size });
    const tv = performance.now();
    await verifyWritten({ pool, index: p.index, read: (o, l, into) => target.readBack(o, l, into), what, onProgress: onProgress('verify') });
    const verifyMs = Math.round(performance.now() - tv);
    emit({ type: 'disk-done', disk: p.stored.name });
    return { name: p.stored.name, key: disk.key, fileName: disk.fileName, size: p.index.size, bytesWritten, writeMs, verifyMs };
  } finally {
    await target.close().catch(() => {});
  }
}
