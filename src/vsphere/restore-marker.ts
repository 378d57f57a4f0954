/**
 * The mark a VM restore leaves on the VM it creates until every disk is written and
 * checked: an advanced setting (extraConfig) naming the process (host, pid, start time:
 * see process-identity.ts) and when it started. A restore killed with SIGKILL (or a host
 * crash) cannot destroy its half-made VM; the next restore to that name finds the mark and
 * removes it, as a backup removes the snapshots of a killed run.
 */
import { type ProcessIdentity, formatOwner, parseOwner } from '../process-identity.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import { type MoRef, TypedText, child, children, text } from './xml.js';

export const RESTORE_MARKER_KEY = 'vmbkp.restore';

/** The restoring process, and when the restore started (ISO time). */
export interface RestoreMarker extends ProcessIdentity {
  readonly started: string;
}

/** `incomplete host=H pid=P pidStart=T boot=B started=ISO` (start and boot when known). */
export function restoreMarkerValue(m: RestoreMarker): string {
  return `incomplete ${formatOwner(m)} started=${m.started}`;
}

/** Reads a marker; older ones (`incomplete host=H pid=P started=ISO`) have no start time. */
export function parseRestoreMarker(value: string): RestoreMarker | undefined {
  const m = /^incomplete (host=\S+ pid=\d+(?: \S+)*) started=(\S+)$/.exec(value);
  const owner = m ? parseOwner(m[1]!) : undefined;
  return owner ? { ...owner, started: m![2]! } : undefined;
}

/** The VM's marker, if it is a restore that never finished. The last value of the key counts. */
export async function readRestoreMarker(session: VsphereSession, vm: MoRef): Promise<RestoreMarker | undefined> {
  const config = (await retrieveOne(session, vm, ['config'])).get('config');
  let value: string | undefined;
  for (const o of children(config, 'extraConfig')) {
    if (text(child(o, 'key')) === RESTORE_MARKER_KEY) value = text(child(o, 'value'));
  }
  return value ? parseRestoreMarker(value) : undefined;
}

/** Removes the marker: an empty value deletes an advanced setting. */
export async function clearRestoreMarker(session: VsphereSession, vm: MoRef, what: string): Promise<void> {
  const res = await session.call('ReconfigVM_Task', vm, {
    spec: { extraConfig: [{ key: RESTORE_MARKER_KEY, value: new TypedText('xsd:string', '') }] },
  });
  await waitForTask(session, taskOf(res), { what });
}
