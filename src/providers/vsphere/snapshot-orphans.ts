/**
 * Which `vmbkp-` snapshots a killed run left (orphans, to remove before a backup) and which
 * a live run still reads (the VM is refused). On this host a run is live when its pid runs
 * with the recorded start time (process-identity.ts); another host's run, whose pid this
 * host cannot see, is live while its snapshot shows a sign of life — a heartbeat, or its
 * creation — younger than the orphan age (snapshot-heartbeat.ts). Shared by the backup
 * and the dry run, so that both judge alike.
 */
import { isThisProcess, ownerState } from '../../process-identity.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { snapshotOwner } from '../../vsphere/snapshot-owner.js';
import type { SnapshotInfo } from '../../vsphere/vm.js';
import { formatAge, lastSignOfLife, orphanAgeMs, serverTime } from './snapshot-heartbeat.js';

/** An orphan, with what the removal warning adds; or a live run's snapshot, with why the VM is refused. */
export type SnapshotVerdict =
  | { readonly orphan: true; readonly detail: string }
  | { readonly orphan: false; readonly refusal: string };

/** vCenter's clock, asked once and only when needed. */
export function vcenterClock(session: VsphereSession): () => Promise<Date> {
  let now: Promise<Date> | undefined;
  return () => (now ??= serverTime(session));
}

export async function judgeVmbkpSnapshot(vmName: string, s: SnapshotInfo, clock: () => Promise<Date>): Promise<SnapshotVerdict> {
  const owner = snapshotOwner(s.description);
  // This very process's (a batch's earlier removal that failed) is an orphan too.
  const state = !owner ? 'unknown' : isThisProcess(owner) ? 'dead' : ownerState(owner);
  if (owner && state === 'alive') {
    return { orphan: false, refusal: `VM ${vmName} is being backed up by vmbkp process ${owner.pid} on this host (snapshot ${s.name})` };
  }
  if (state === 'dead') return { orphan: true, detail: '' };
  const sign = lastSignOfLife(s);
  const age = sign ? (await clock()).getTime() - sign.getTime() : Infinity;
  if (age < orphanAgeMs()) {
    const who = owner ? `vmbkp process ${owner.pid} on host ${owner.host}` : 'another vmbkp run';
    return {
      orphan: false,
      refusal: `VM ${vmName} is being backed up by ${who} (snapshot ${s.name}, last sign of life ${formatAge(age)} ago; `
        + `taken for an orphan after ${formatAge(orphanAgeMs())} without one)`,
    };
  }
  return { orphan: true, detail: (owner ? ` of host ${owner.host}` : '') + (sign ? ` (no sign of life for ${formatAge(age)})` : '') };
}
