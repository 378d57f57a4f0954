/**
 * Which VMs a recipe backs up, from vCenter's inventory: a pure function, so the rules are
 * tested by tables. Targets are taken in the order the recipe lists them (vms, then
 * folders), each pattern's matches in inventory order, each VM once; exclusions last.
 */
import { globToRegExp, isGlob } from './glob.js';

export interface InventoryVm {
  readonly name: string;
  readonly moref: string;
  /** Inventory paths of the folders holding the VM, e.g. "DC0/vm/production/web". */
  readonly folderPaths?: readonly string[];
}

export interface TargetSpec {
  readonly vms?: readonly string[];
  readonly folders?: readonly string[];
  readonly exclude?: readonly string[];
  readonly excludeDisks?: Readonly<Record<string, readonly number[]>>;
}

export interface SelectedVm {
  readonly name: string;
  readonly moref: string;
  /** Device keys of disks not to back up, ascending. */
  readonly excludeDisks: number[];
}

export interface Selection {
  readonly vms: SelectedVm[];
  /** Names and morefs without glob characters that match no VM: likely typos or removed VMs. */
  readonly missing: string[];
}

/** A folder path holds a VM when it is the VM's folder or one above it, whole components only. */
function under(vmFolder: string, folder: string): boolean {
  const f = folder.replace(/\/+$/, '');
  return vmFolder === f || vmFolder.startsWith(`${f}/`);
}

export function selectVms(targets: TargetSpec, inventory: readonly InventoryVm[]): Selection {
  const chosen = new Map<string, InventoryVm>(); // by moref: a VM listed twice is backed up once
  const missing: string[] = [];
  const add = (vm: InventoryVm) => { if (!chosen.has(vm.moref)) chosen.set(vm.moref, vm); };

  for (const pattern of targets.vms ?? []) {
    const re = globToRegExp(pattern);
    // A moref matches exactly; a name by glob (a name without glob characters matches itself).
    const hits = inventory.filter((vm) => vm.moref === pattern || re.test(vm.name));
    if (hits.length === 0 && !isGlob(pattern)) missing.push(pattern);
    hits.forEach(add);
  }
  for (const folder of targets.folders ?? []) {
    inventory.filter((vm) => (vm.folderPaths ?? []).some((p) => under(p, folder))).forEach(add);
  }

  const excluded = (targets.exclude ?? []).map(globToRegExp);
  const disks = targets.excludeDisks ?? {};
  const vms = [...chosen.values()]
    .filter((vm) => !excluded.some((re) => re.test(vm.name)))
    .map((vm) => ({
      name: vm.name,
      moref: vm.moref,
      excludeDisks: [...new Set([...(disks[vm.name] ?? []), ...(disks[vm.moref] ?? [])])].sort((a, b) => a - b),
    }));
  return { vms, missing };
}
