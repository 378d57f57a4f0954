/**
 * The filesystems libguestfs finds on the appliance's drives, named as the user sees them:
 * `sda1` for a partition (`sda` for a filesystem on the whole disk), `VG/LV` for an LVM
 * logical volume. Names are per drive: the second drive's first partition is `sda1` of
 * that drive too, so that a name does not depend on which other disks were attached.
 */
import { type Guestfish, GuestfishError, quote } from './guestfish.js';

export interface GuestFilesystem {
  /** Index of the drive (in the order the drives were added) it lives on. */
  readonly drive: number;
  readonly name: string;
  /** The appliance's device ("/dev/sdb1", "/dev/vg0/root"). */
  readonly device: string;
  readonly type: string;
  readonly size: number;
  readonly label: string | null;
}

/** Drive index of an appliance device /dev/sdX… (or /dev/vdX…); undefined for others. */
function driveOf(device: string): number | undefined {
  const m = /^\/dev\/[sv]d([a-z]+)\d*$/.exec(device);
  if (!m) return undefined;
  let n = 0;
  for (const c of m[1]!) n = n * 26 + (c.charCodeAt(0) - 96);
  return n - 1;
}

/** The user's name of a device: sdb1 → sda1 (per drive), /dev/vg0/root → vg0/root. */
export function filesystemName(device: string): string {
  const m = /^\/dev\/[sv]d[a-z]+(\d*)$/.exec(device);
  if (m) return `sda${m[1]}`;
  return device.replace(/^\/dev\/(mapper\/)?/, '');
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** LVM volume groups → the drive of their first physical volume. */
async function volumeGroupDrives(g: Guestfish): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const pvs = lines(await g.call('pvs'));
  if (pvs.length === 0) return out;
  const uuidDrive = new Map<string, number>();
  for (const pv of pvs) {
    const d = driveOf(pv);
    if (d !== undefined) uuidDrive.set(lines(await g.call(`pvuuid ${quote(pv)}`))[0] ?? '', d);
  }
  for (const vg of lines(await g.call('vgs'))) {
    const uuids = lines(await g.call(`vgpvuuids ${quote(vg)}`));
    const d = uuids.map((u) => uuidDrive.get(u)).find((x) => x !== undefined);
    if (d !== undefined) out.set(vg, d);
  }
  return out;
}

/** Every filesystem found (unformatted partitions left out), with size and label. */
export async function listFilesystems(g: Guestfish): Promise<GuestFilesystem[]> {
  const found: { device: string; type: string }[] = [];
  for (const line of lines(await g.call('list-filesystems'))) {
    const at = line.lastIndexOf(': ');
    if (at < 0) continue;
    const type = line.slice(at + 2);
    if (type !== 'unknown') found.push({ device: line.slice(0, at), type });
  }
  const vgDrives = found.some((f) => driveOf(f.device) === undefined) ? await volumeGroupDrives(g) : new Map<string, number>();
  const out: GuestFilesystem[] = [];
  for (const f of found) {
    const vg = /^\/dev\/(?:mapper\/)?([^/]+)\/[^/]+$/.exec(f.device)?.[1];
    const drive = driveOf(f.device) ?? (vg !== undefined ? vgDrives.get(vg) : undefined) ?? 0;
    const size = Number(lines(await g.call(`blockdev-getsize64 ${quote(f.device)}`))[0] ?? 0);
    let label: string | null = null;
    try {
      label = (await g.call(`vfs-label ${quote(f.device)}`)).replace(/\n$/, '') || null;
    } catch (err) {
      if (!(err instanceof GuestfishError)) throw err; // a filesystem without labels (swap, LUKS)
    }
    out.push({ drive, name: filesystemName(f.device), device: f.device, type: f.type, size, label });
  }
  return out;
}

/** True when the drives hold LVM: the same volume group on two generations' drives clashes. */
export async function hasLvm(g: Guestfish): Promise<boolean> {
  return lines(await g.call('pvs')).length > 0;
}
