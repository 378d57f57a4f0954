/**
 * What `vmbkp show` tells of a generation's machine, read leniently from the stored record
 * like machine-summary.ts: a record of a kind this build does not know shows its kind only.
 */
import { vmConfigSummary, type VmConfigSummary } from './vsphere/config-summary.js';
import type { XmlNode } from '../vsphere/xml.js';

export interface MachineDetails {
  readonly kind: string;
  /** vsphere-vm: where the VM was and what it was read from. */
  readonly vcenter?: string;
  readonly moref?: string;
  readonly name?: string;
  readonly instanceUuid?: string;
  readonly snapshot?: string;
  readonly changeTracking?: boolean;
  readonly consistency?: string;
  /** vsphere-vm: the configuration at backup time. */
  readonly configuration?: VmConfigSummary;
  /** The machine's files saved beside its disks (vsphere-vm: the .vmx, role config, and the nvram). */
  readonly savedFiles?: { readonly name: string; readonly role: string; readonly size: number; readonly sha256: string }[];
  /** vsphere-vm: disks of the VM that were not backed up, and why. */
  readonly skippedDisks?: { readonly key: number; readonly label: string; readonly reason: string }[];
}

export function machineDetails(record: unknown): MachineDetails | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const m = record as Record<string, unknown>;
  if (typeof m['kind'] !== 'string') return undefined;
  const out: Record<string, unknown> = { kind: m['kind'] };
  if (m['kind'] !== 'vsphere-vm') return out as unknown as MachineDetails;
  for (const k of ['vcenter', 'moref', 'name', 'instanceUuid', 'snapshot', 'consistency']) if (typeof m[k] === 'string') out[k] = m[k];
  if (typeof m['changeTracking'] === 'boolean') out['changeTracking'] = m['changeTracking'];
  const config = m['config'];
  if (typeof config === 'object' && config !== null && !Array.isArray(config)) out['configuration'] = vmConfigSummary(config as XmlNode);
  const files = Array.isArray(m['files']) ? (m['files'] as unknown[]) : [];
  out['savedFiles'] = files.flatMap((f) => {
    const r = (typeof f === 'object' && f !== null ? f : {}) as Record<string, unknown>;
    return typeof r['name'] === 'string' && typeof r['role'] === 'string' && typeof r['size'] === 'number' && typeof r['sha256'] === 'string'
      ? [{ name: r['name'], role: r['role'], size: r['size'], sha256: r['sha256'] }]
      : [];
  });
  const disks = Array.isArray(m['disks']) ? (m['disks'] as unknown[]) : [];
  out['skippedDisks'] = disks.flatMap((d) => {
    const r = (typeof d === 'object' && d !== null ? d : {}) as Record<string, unknown>;
    return typeof r['skipped'] === 'string'
      ? [{ key: typeof r['key'] === 'number' ? r['key'] : 0, label: typeof r['label'] === 'string' ? r['label'] : '?', reason: r['skipped'] }]
      : [];
  });
  return out as unknown as MachineDetails;
}
