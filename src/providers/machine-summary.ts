/**
 * What listings show of a generation's machine, read leniently from the stored record
 * (the manifest's `machine`, kept opaque by the repository): a record of a kind this build
 * does not know, or one written before a field existed, shows less; it never fails a listing.
 */
import type { Consistency } from './machine-provider.js';

export interface MachineSummary {
  /** The machine: its kind, and its name and instance UUID when recorded. */
  readonly machine: { readonly kind: string; readonly name?: string; readonly instanceUuid?: string };
  /** How consistent the backup's disks are, when recorded. */
  readonly consistency?: Consistency;
  /** The roles of the machine's files saved beside its disks (`config`, `nvram`); absent when none were. */
  readonly savedFiles?: readonly string[];
}

const CONSISTENCIES: readonly string[] = ['quiesced', 'crash', 'powered-off'] satisfies Consistency[];

export function machineSummary(record: unknown): MachineSummary | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const m = record as Record<string, unknown>;
  const kind = m['kind'];
  if (typeof kind !== 'string') return undefined;
  const text = (k: string) => (typeof m[k] === 'string' && m[k] !== '' ? { [k]: m[k] as string } : {});
  const c = m['consistency'];
  const files = Array.isArray(m['files']) ? (m['files'] as unknown[]).flatMap((f) => {
    const role = typeof f === 'object' && f !== null ? (f as Record<string, unknown>)['role'] : undefined;
    return typeof role === 'string' ? [role] : [];
  }) : [];
  return {
    machine: { kind, ...text('name'), ...text('instanceUuid') },
    ...(typeof c === 'string' && CONSISTENCIES.includes(c) ? { consistency: c as Consistency } : {}),
    ...(files.length > 0 ? { savedFiles: files } : {}),
  };
}
