/**
 * What a VM backup stores about the machine (the manifest's `machine`, kind
 * `vsphere-vm`, written by backup-vm.ts), and reading it back: checked, because a
 * restore acts on it.
 */
import { z } from 'zod';
import { RepositoryDamagedError } from '../../errors.js';
import type { XmlNode } from '../../vsphere/xml.js';

/** What a generation of a VM records about the machine. */
export interface VsphereMachine {
  readonly kind: 'vsphere-vm';
  readonly vcenter: string;
  readonly moref: string;
  readonly name: string;
  readonly snapshot: string;
  readonly changeTracking: boolean;
  readonly disks: readonly {
    readonly name: string; readonly key: number; readonly label: string; readonly fileName: string;
    readonly controllerKey: number; readonly unitNumber: number; readonly capacity: number;
    readonly diskMode: string; readonly thinProvisioned?: boolean; readonly skipped?: string;
  }[];
  /** The VM's configuration at snapshot time, as vCenter returned it (XML as a JSON tree). */
  readonly config: XmlNode;
  /** An OVF descriptor of the VM without its disks. */
  readonly ovf: string;
}

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

/** A stored machine of kind `vsphere-vm` (`gen` names the generation), checked. */
export function parseVsphereMachine(machine: unknown, gen: string): VsphereMachine {
  const parsed = Machine.safeParse(machine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`${gen}: the stored VM configuration is malformed (${issue?.path.join('.') || 'machine'}: ${issue?.message ?? 'invalid'})`);
  }
  return parsed.data;
}
