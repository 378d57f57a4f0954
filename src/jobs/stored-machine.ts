/**
 * Reading back what a VM backup stored about the machine (the manifest's `machine`,
 * written by backup-vm.ts): checked, because a restore acts on it.
 */
import { z } from 'zod';
import { InputError, RepositoryDamagedError } from '../errors.js';
import type { GenerationManifest } from '../repository/generation.js';
import type { XmlNode } from '../vsphere/xml.js';
import type { VsphereMachine } from './backup-vm.js';

const MachineDisk = z.object({
  name: z.string(),
  key: z.number().int(),
  label: z.string(),
  fileName: z.string(),
  controllerKey: z.number().int(),
  unitNumber: z.number().int().nonnegative(),
  capacity: z.number().int().positive(),
  diskMode: z.string(),
  thinProvisioned: z.boolean().optional(),
  skipped: z.string().optional(),
});

const Machine = z.object({
  kind: z.literal('vsphere-vm'),
  vcenter: z.string(),
  moref: z.string(),
  name: z.string(),
  snapshot: z.string(),
  changeTracking: z.boolean(),
  disks: z.array(MachineDisk),
  config: z.custom<XmlNode>((v) => typeof v === 'object' && v !== null && !Array.isArray(v)),
  ovf: z.string(),
});

/** The stored VM of a generation; a generation of plain disks is refused with what to do instead. */
export function storedMachine(m: GenerationManifest): VsphereMachine {
  const gen = `set ${m.set} generation ${m.generation}`;
  const kind = (m.machine as { kind?: unknown } | undefined)?.kind;
  if (kind !== 'vsphere-vm') {
    throw new InputError(`${gen} is not a VM backup (it stores no VM configuration): restore its disks with --disk NAME --to URI (disks: ${m.disks.map((d) => d.name).join(', ') || 'none'})`);
  }
  const parsed = Machine.safeParse(m.machine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`${gen}: the stored VM configuration is malformed (${issue?.path.join('.') || 'machine'}: ${issue?.message ?? 'invalid'})`);
  }
  return parsed.data;
}
