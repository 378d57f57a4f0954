/**
 * The description vmbkp gives the snapshots it takes names the process that took it
 * (host, pid, start time: see process-identity.ts), so that a later run can tell a
 * snapshot a killed run left behind from one a running backup still reads.
 */
import { type ProcessIdentity, formatOwner, parseOwner, thisProcess } from '../process-identity.js';

/** vmbkp's snapshots are named with this prefix: a later run finds what a killed one left by it. */
export const SNAPSHOT_PREFIX = 'vmbkp-';

/** `vmbkp backup; host=H pid=P pidStart=T boot=B started=ISO` (start and boot when known). */
export function backupSnapshotDescription(owner: ProcessIdentity = thisProcess(), started: Date = new Date()): string {
  return `vmbkp backup; ${formatOwner(owner)} started=${started.toISOString()}`;
}

/** The process that took a snapshot, from its description; older ones (`host=H pid=P`) have no start time. */
export function snapshotOwner(description: string | undefined): ProcessIdentity | undefined {
  return description === undefined ? undefined : parseOwner(description);
}
