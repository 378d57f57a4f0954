/**
 * Export leases a killed run left: the nfc transport records its lease in its snapshot's
 * description (snapshot-owner.ts leaseField), and while a lease is unfinished vSphere
 * blocks operations on the VM — the orphan snapshot's removal among them — until the
 * lease times out (about 5 minutes without progress). The next run aborts it first.
 */
import { abortLease } from '../../vsphere/nfc-lease.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { leasesOf } from '../../vsphere/snapshot-owner.js';
import type { SnapshotInfo } from '../../vsphere/vm.js';
import { MoRef } from '../../vsphere/xml.js';

export async function abortLeftLeases(session: VsphereSession, vmName: string, s: SnapshotInfo, warn: (m: string) => void): Promise<void> {
  for (const id of leasesOf(s.description)) {
    try {
      await abortLease(session, new MoRef('HttpNfcLease', id));
      warn(`aborted export lease ${id} on snapshot ${s.name} of VM ${vmName}, left unfinished by an earlier run`);
    } catch {
      // Ended already (completed, aborted, or timed out): nothing holds the VM.
    }
  }
}
