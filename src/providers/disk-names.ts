/**
 * The names a disk of a generation answers to: its stored name always; for a VM disk also
 * the label vSphere shows ("Hard disk 1") and its bus position ("scsi0:0", from the stored
 * configuration's controller and the disk's unit number). Plain disk-image sets have only names.
 */
import type { GenerationManifest } from '../repository/generation.js';
import { busKind, storageControllers } from '../vsphere/create-vm.js';
import { type VsphereMachine, parseVsphereMachine } from './vsphere/stored-vm.js';

export interface DiskName {
  /** The disk's name in the manifest (a VM disk's device key, e.g. "2000"). */
  readonly name: string;
  readonly label?: string;
  /** Lower case, e.g. "scsi0:1". */
  readonly bus?: string;
}

/** One entry per disk of the manifest, in its order. */
export function diskNames(m: GenerationManifest): DiskName[] {
  const kind = (m.machine as { kind?: unknown } | undefined)?.kind;
  if (kind !== 'vsphere-vm') return m.disks.map((d) => ({ name: d.name }));
  let machine: VsphereMachine;
  try {
    machine = parseVsphereMachine(m.machine, `set ${m.set} generation ${m.generation}`);
  } catch {
    // A malformed record still leaves the disks reachable by name; a VM restore reports the damage.
    return m.disks.map((d) => ({ name: d.name }));
  }
  const controllers = new Map(storageControllers(machine.config).map((c) => [c.key, c]));
  return m.disks.map((d) => {
    const stored = machine.disks.find((x) => x.name === d.name);
    if (!stored) return { name: d.name };
    const c = controllers.get(stored.controllerKey);
    const bus = c && busKind(c.type);
    return { name: d.name, label: stored.label, ...(c && bus ? { bus: `${bus}${c.busNumber}:${stored.unitNumber}` } : {}) };
  });
}

/** "2000 (Hard disk 1, scsi0:0)", or the bare name of a plain disk. */
export function describeDiskName(n: DiskName): string {
  const extra = [n.label, n.bus].filter((x) => x !== undefined);
  return extra.length ? `${n.name} (${extra.join(', ')})` : n.name;
}
