/**
 * A recipe's targets against vCenter's inventory: every VM once, in recipe order, and a
 * failed target for each name, moref or folder that finds nothing (a typo or a removed
 * VM is reported, and does not stop the others).
 */
import { NotFoundError, describeCause } from '../errors.js';
import type { MachineInventory, MachineTarget } from '../providers/machine-provider.js';
import type { Targets } from './schema.js';
import { type InventoryVm, selectVms } from './select.js';

export async function resolveTargets(provider: MachineInventory, targets: Targets): Promise<MachineTarget[]> {
  const inventory = new Map<string, { name: string; moref: string; folderPaths: string[] }>();
  for (const vm of await provider.listMachines()) inventory.set(vm.id, { name: vm.name, moref: vm.id, folderPaths: [] });

  const missing: MachineTarget[] = [];
  for (const folder of targets.folders) {
    try {
      for (const vm of await provider.machinesInFolder(folder)) inventory.get(vm.id)?.folderPaths.push(folder);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      missing.push({ name: folder, unresolved: describeCause(err) });
    }
  }
  const selection = selectVms(targets, [...inventory.values()] satisfies InventoryVm[]);
  for (const name of selection.missing) missing.push({ name, unresolved: `VM ${JSON.stringify(name)} does not exist on ${provider.location}` });
  // Sets are named after VMs: two VMs whose names map to one set would mix their generations.
  const bySet = new Map<string, string[]>();
  for (const vm of selection.vms) bySet.set(provider.setName(vm.name), [...(bySet.get(provider.setName(vm.name)) ?? []), vm.moref]);
  const vms = selection.vms.map((vm): MachineTarget => {
    const same = bySet.get(provider.setName(vm.name))!;
    return same.length === 1 ? { name: vm.name, id: vm.moref, excludeDisks: vm.excludeDisks }
      : { name: `${vm.name} (${vm.moref})`, unresolved: `VMs ${same.join(', ')} would share backup set ${provider.setName(vm.name)}: rename one, or exclude all but one` };
  });
  return [...vms, ...missing];
}
