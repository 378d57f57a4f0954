/**
 * A running backup's snapshot, as other hosts see it. Another host cannot see our pid, so
 * it judges a `vmbkp-` snapshot by its last sign of life: while the backup runs, its
 * snapshot's description is refreshed (RenameSnapshot, same name, `alive=` vCenter's time)
 * every few minutes, and a snapshot whose last sign is older than the orphan age is one a
 * killed run left. Judging by the last heartbeat, not the backup's start, keeps a long
 * backup of a big VM from looking orphaned; judging by vCenter's clock, not the hosts',
 * keeps clock skew between hosts out of it.
 *
 * And before its generation commits, a backup checks that its snapshot is still there: a
 * snapshot removed under it (by an older vmbkp elsewhere, or an administrator) was
 * consolidated into the very files the backup was reading.
 */
import { IoError, describeCause } from '../../errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { lastHeartbeat, withoutHeartbeat } from '../../vsphere/snapshot-owner.js';
import { snapshotsOf, type SnapshotInfo } from '../../vsphere/vm.js';
import { MoRef, textAt } from '../../vsphere/xml.js';

const SERVICE_INSTANCE = new MoRef('ServiceInstance', 'ServiceInstance');

/** Heartbeat interval: VMBKP_SNAPSHOT_HEARTBEAT_SECONDS, default 300 (5 min). */
export function heartbeatIntervalMs(): number {
  const s = Number(process.env['VMBKP_SNAPSHOT_HEARTBEAT_SECONDS']);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 300_000;
}

/**
 * How long without a sign of life makes another host's snapshot an orphan:
 * VMBKP_SNAPSHOT_ORPHAN_MINUTES, default 30 — six missed heartbeats, so a busy vCenter
 * or a slow call never makes a live backup look dead.
 */
export function orphanAgeMs(): number {
  const m = Number(process.env['VMBKP_SNAPSHOT_ORPHAN_MINUTES']);
  return Number.isFinite(m) && m >= 0 ? m * 60_000 : 30 * 60_000;
}

/** vCenter's clock (ServiceInstance.CurrentTime). */
export async function serverTime(session: VsphereSession): Promise<Date> {
  const res = await session.call('CurrentTime', SERVICE_INSTANCE);
  const t = new Date(textAt(res, 'returnval') ?? '');
  if (Number.isNaN(t.getTime())) throw new IoError(`vCenter ${session.host} answered CurrentTime with no time`);
  return t;
}

/** A snapshot's last sign of life: its last heartbeat, else (an older vmbkp, or none yet) its creation. */
export function lastSignOfLife(s: SnapshotInfo): Date | undefined {
  const beat = lastHeartbeat(s.description);
  if (beat) return beat;
  const created = s.created !== undefined ? new Date(s.created) : undefined;
  return created && !Number.isNaN(created.getTime()) ? created : undefined;
}

/** "3 min", "2 h 5 min": an age for messages. */
export function formatAge(ms: number): string {
  const min = Math.max(0, Math.floor(ms / 60_000));
  if (min < 1) return `${Math.max(0, Math.round(ms / 1000))} s`;
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

export interface SnapshotHeartbeat {
  /** Stops refreshing; waits for a refresh under way. */
  stop(): Promise<void>;
  /** Adds a `key=value` field to the description for good and writes it at once. */
  addField(field: string): Promise<void>;
}

/**
 * Refreshes `snapshot`'s description every heartbeatIntervalMs() until stopped. A failed
 * refresh is warned about once (the backup goes on: its own snapshot check before the
 * commit says whether the snapshot is still there).
 */
export function startHeartbeat(session: VsphereSession, vm: VmRef, snapshot: MoRef, name: string, description: string,
  warn: (m: string) => void): SnapshotHeartbeat {
  let base = withoutHeartbeat(description);
  let warned = false;
  let inFlight: Promise<void> = Promise.resolve();
  const beat = async () => {
    try {
      const now = await serverTime(session);
      await session.call('RenameSnapshot', snapshot, { name, description: `${base} alive=${now.toISOString()}` });
    } catch (err) {
      if (!warned) {
        warned = true;
        warn(`refreshing snapshot ${name} of VM ${vm.name} failed: ${describeCause(err)}; another host may take it for an orphan `
          + `${formatAge(orphanAgeMs())} after its last refresh`);
      }
    }
  };
  const timer = setInterval(() => { inFlight = inFlight.then(beat); }, heartbeatIntervalMs());
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
    async addField(field) {
      base = `${base} ${field}`;
      inFlight = inFlight.then(beat);
      await inFlight;
    },
  };
}

/** Whether the VM still has `snapshot` under `name`. */
export async function snapshotStillThere(session: VsphereSession, vm: VmRef, snapshot: MoRef, name: string): Promise<boolean> {
  const now = snapshotsOf((await retrieveOne(session, vm.ref, ['snapshot'])).get('snapshot'));
  return now.some((s) => s.ref.value === snapshot.value && s.name === name);
}

/** A snapshot removed while the backup read it was consolidated into the files read: what was read is not what it froze. */
export function snapshotGoneError(vm: VmRef, snapshot: MoRef, name: string): IoError {
  return new IoError(`snapshot ${name} (${snapshot.value}) of VM ${vm.name} was removed while the backup read it `
    + '(by another host\'s vmbkp or by hand): the disks read may not be what it froze, so no generation is committed');
}
