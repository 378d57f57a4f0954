/**
 * A recipe's targets against vCenter's inventory: every VM once, in recipe order, and a
 * failed target for each name, moref or folder that finds nothing (a typo or a removed
 * VM is reported, and does not stop the others).
 */
import { NotFoundError, describeCause } from '../errors.js';
import type { BatchTarget } from '../jobs/backup-batch.js';
import { setNameForVm } from '../jobs/backup-vm.js';
import { listVms, vmsInFolder } from '../vsphere/inventory.js';
import type { VsphereSession } from '../vsphere/session.js';
import type { Targets } from './schema.js';
import { type InventoryVm, selectVms } from './select.js';

export async function resolveTargets(session: VsphereSession, targets: Targets): Promise<BatchTarget[]> {
  const inventory = new Map<string, { name: string; moref: string; folderPaths: string[] }>();
  for (const vm of await listVms(session)) inventory.set(vm.ref.value, { name: vm.name, moref: vm.ref.value, folderPaths: [] });

  const missing: BatchTarget[] = [];
  for (const folder of targets.folders) {
    try {
      for (const vm of await vmsInFolder(session, folder)) inventory.get(vm.ref.value)?.folderPaths.push(folder);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      missing.push({ name: folder, unresolved: describeCause(err) });
    }
  }
  const selection = selectVms(targets, [...inventory.values()] satisfies InventoryVm[]);
  for (const name of selection.missing) missing.push({ name, unresolved: `VM ${JSON.stringify(name)} does not exist on ${session.host}` });
  // Sets are named after VMs: two VMs whose names map to one set would mix their generations.
  const bySet = new Map<string, string[]>();
  for (const vm of selection.vms) bySet.set(setNameForVm(vm.name), [...(bySet.get(setNameForVm(vm.name)) ?? []), vm.moref]);
  const vms = selection.vms.map((vm): BatchTarget => {
    const same = bySet.get(setNameForVm(vm.name))!;
    return same.length === 1 ? vm
      : { name: `${vm.name} (${vm.moref})`, unresolved: `VMs ${same.join(', ')} would share backup set ${setNameForVm(vm.name)}: rename one, or exclude all but one` };
  });
  return [...vms, ...missing];
}
