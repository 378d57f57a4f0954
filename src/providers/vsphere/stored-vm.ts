/**
 * Reading back what a VM backup stored about the machine (the manifest's `machine`,
 * kind `vsphere-vm`, written by backup-vm.ts): checked, because a restore acts on it.
 */
import { z } from 'zod';
import { RepositoryDamagedError } from '../../errors.js';
import { MachineFileRef } from '../../repository/machine-files.js';
import type { XmlNode } from '../../vsphere/xml.js';
import type { VsphereMachine } from './backup-vm.js';

export type { VsphereMachine } from './backup-vm.js';

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
  files: z.array(MachineFileRef).optional(),
});

/** A stored machine of kind `vsphere-vm` (`gen` names the generation), checked. */
export function parseVsphereMachine(machine: unknown, gen: string): VsphereMachine {
  const parsed = Machine.safeParse(machine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`${gen}: the stored VM configuration is malformed (${issue?.path.join('.') || 'machine'}: ${issue?.message ?? 'invalid'})`);
  }
  return parsed.data;
}
