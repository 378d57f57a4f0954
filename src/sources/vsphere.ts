/**
 * A VM's disk as seen by a snapshot, as a DiskSource. What changed comes from vSphere's
 * changed-block tracking (QueryChangedDiskAreas against the snapshot); the bytes come
 * from a transport (https: the datastore's flat file; vddk: nbdkit's vddk plugin).
 */
import { describeCause } from '../errors.js';
import { faultOf } from '../vsphere/errors.js';
import type { VmRef } from '../vsphere/inventory.js';
import type { VsphereSession } from '../vsphere/session.js';
import { type VirtualDiskInfo, queryChangedDiskAreas } from '../vsphere/vm.js';
import type { MoRef } from '../vsphere/xml.js';
import type { ChangesUnknown, DiskSource, Extent } from './types.js';

/** One disk of one snapshot of one VM. */
export interface SnapshotDisk {
  readonly session: VsphereSession;
  readonly vm: VmRef;
  readonly snapshot: MoRef;
  /** The disk as the snapshot's configuration describes it (its backing is the frozen file). */
  readonly disk: VirtualDiskInfo;
  /**
   * Records an export lease taken on the snapshot (the nfc transport), so that a later
   * run can abort it when this one is killed: an unfinished lease blocks the VM.
   */
  readonly noteLease?: (lease: MoRef) => Promise<void>;
}

/** How a transport moves bytes; allocation is optional (CBT answers it otherwise). */
export interface DiskReader {
  readonly description: string;
  read(offset: number, length: number, into: Buffer): Promise<void>;
  allocated?(offset: number, length: number): Promise<Extent[]>;
  close(): Promise<void>;
}

export function diskLabel(d: SnapshotDisk): string {
  return `disk ${d.disk.key} of VM ${d.vm.name}`;
}

export class VsphereDiskSource implements DiskSource {
  readonly description: string;
  readonly size: number;
  private allAreas: Promise<Extent[] | undefined> | undefined;

  constructor(private readonly d: SnapshotDisk, private readonly reader: DiskReader) {
    this.description = reader.description;
    this.size = d.disk.capacity;
  }

  private query(changeId: string): Promise<Extent[]> {
    return queryChangedDiskAreas(this.d.session, this.d.vm.ref, this.d.snapshot, this.d.disk.key, this.size, changeId);
  }

  async allocated(offset: number, length: number): Promise<Extent[]> {
    if (this.reader.allocated) return this.reader.allocated(offset, length);
    // With CBT on, changeId "*" lists the allocated areas; without it, everything may hold data.
    // A refusal is not "unknown": the role lacks a privilege the user must grant (exit 7, not a silent full read).
    this.allAreas ??= this.d.disk.changeId ? this.query('*').catch((err: unknown) => { if (faultOf(err) === 'NoPermission') throw err; return undefined; })
      : Promise.resolve(undefined);
    const areas = await this.allAreas;
    if (!areas) return [{ start: offset, length }];
    const end = offset + length;
    return areas
      .filter((a) => a.start < end && a.start + a.length > offset)
      .map((a) => ({ start: Math.max(a.start, offset), length: Math.min(a.start + a.length, end) - Math.max(a.start, offset) }));
  }

  async changedSince(token: string): Promise<Extent[] | ChangesUnknown> {
    if (!this.d.disk.changeId) return { unknown: `changed-block tracking is off for ${diskLabel(this.d)} (use --enable-cbt)` };
    try {
      return await this.query(token);
    } catch (err) {
      if (faultOf(err) === undefined || faultOf(err) === 'NoPermission') throw err;
      return { unknown: `vSphere cannot list the changes of ${diskLabel(this.d)} since change id ${token} (${describeCause(err)})` };
    }
  }

  async changeToken(): Promise<string | undefined> {
    return this.d.disk.changeId;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(length);
    await this.reader.read(offset, length, buf.subarray(0, length));
    return buf;
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}
