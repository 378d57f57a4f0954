/**
 * The disks of a restored VM: found among the disks it was created with, and opened
 * through the transport when the restore job writes them (jobs/restore-machine.ts).
 */
import { IoError } from '../../errors.js';
import { storageControllers } from '../../vsphere/create-vm.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { type VirtualDiskInfo, disksOf } from '../../vsphere/vm.js';
import type { XmlNode } from '../../vsphere/xml.js';
import type { DiskToRestore, WrittenDisk } from '../machine-provider.js';
import type { RestoreContext, RestoredDisk } from './restore-vm-context.js';

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

/** The VM's disks `targets` (in plan order) for the job to write: each opened by the transport when its turn comes. */
export function disksToRestore(ctx: RestoreContext, vm: VmRef, targets: readonly VirtualDiskInfo[], datacenterPath: string): DiskToRestore[] {
  const { req } = ctx;
  return ctx.plans.map((p, i) => {
    const disk = targets[i]!;
    return {
      stored: p.stored,
      what: `disk ${disk.key} of VM ${vm.name} (disk ${p.stored.name} of ${ctx.gen})`,
      open: () => req.openDisk({ session: req.session, vm, disk, datacenterPath }),
    };
  });
}

/** The restored disks as the result reports them: the job's figures with the VM's device key and file. */
export function restoredDisks(targets: readonly VirtualDiskInfo[], written: readonly WrittenDisk[]): RestoredDisk[] {
  return written.map((w, i) => ({
    name: w.name, key: targets[i]!.key, fileName: targets[i]!.fileName, size: w.size, bytesWritten: w.bytesWritten, writeMs: w.writeMs, verifyMs: w.verifyMs,
  }));
}
