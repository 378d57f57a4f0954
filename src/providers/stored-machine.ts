/**
 * The manifest's `machine`: what the disks of a generation belong to, a union tagged by
 * `kind`, one kind per provider (docs/format.md). The repository keeps it opaque; the
 * providers write it, and a restore reads it back through here.
 */
import { InputError } from '../errors.js';
import type { GenerationManifest } from '../repository/generation.js';
import { type VsphereMachine, parseVsphereMachine } from './vsphere/stored-vm.js';

export type { VsphereMachine } from './vsphere/stored-vm.js';

export type StoredMachine = VsphereMachine;

/** The stored machine of a generation, checked; a generation of plain disks is refused with what to do instead. */
export function storedMachine(m: GenerationManifest): StoredMachine {
  const gen = `set ${m.set} generation ${m.generation}`;
  const kind = (m.machine as { kind?: unknown } | undefined)?.kind;
  switch (kind) {
    case 'vsphere-vm':
      return parseVsphereMachine(m.machine, gen);
    default:
      throw new InputError(`${gen} is not a VM backup (it stores no VM configuration): restore its disks with --disk NAME --to URI (disks: ${m.disks.map((d) => d.name).join(', ') || 'none'})`);
  }
}
