/**
 * The description vmbkp gives the snapshots it takes names the process that took it
 * (host, pid, start time: see process-identity.ts), so that a later run can tell a
 * snapshot a killed run left behind from one a running backup still reads. A running
 * backup adds `alive=ISO` (vCenter's clock) and refreshes it (a heartbeat): another host,
 * which cannot see the owner's pid, judges the snapshot by how long ago that was.
 */
import { type ProcessIdentity, formatOwner, parseOwner, thisProcess } from '../process-identity.js';

/** vmbkp's snapshots are named with this prefix: a later run finds what a killed one left by it. */
export const SNAPSHOT_PREFIX = 'vmbkp-';

/** `vmbkp backup; host=H pid=P pidStart=T boot=B started=ISO[ alive=ISO]` (start and boot when known). */
export function backupSnapshotDescription(owner: ProcessIdentity = thisProcess(), started: Date = new Date(), alive?: Date): string {
  return `vmbkp backup; ${formatOwner(owner)} started=${started.toISOString()}`
    + (alive !== undefined ? ` alive=${alive.toISOString()}` : '');
}

/** The process that took a snapshot, from its description; older ones (`host=H pid=P`) have no start time. */
export function snapshotOwner(description: string | undefined): ProcessIdentity | undefined {
  return description === undefined ? undefined : parseOwner(description);
}

/** The description without its heartbeat, for writing a new one after it. */
export function withoutHeartbeat(description: string): string {
  return description.replace(/\s+alive=\S+/g, '');
}

/** The last heartbeat a description records (`alive=ISO`), or undefined (none yet, or an older vmbkp). */
export function lastHeartbeat(description: string | undefined): Date | undefined {
  const m = /(?:^|\s)alive=(\S+)(?=\s|$)/.exec(description ?? '');
  if (!m) return undefined;
  const t = new Date(m[1]!);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

/** The field recording an export lease taken on a snapshot (the nfc transport): a killed run's is aborted by the next. */
export function leaseField(leaseId: string): string {
  return `nfcLease=${leaseId}`;
}

/** The export leases a description records. */
export function leasesOf(description: string | undefined): string[] {
  return [...(description ?? '').matchAll(/(?:^|\s)nfcLease=(\S+)(?=\s|$)/g)].map((m) => m[1]!);
}
