/**
 * `restore --vcenter … --dry-run`: the VM a restore would create or write over, its disks,
 * networks and datastore, and why it would be refused — found with read-only calls only
 * (the inventory, the placement, the existing VM's state). The same checks as
 * restore-vm.ts, restore-vm-create.ts and restore-vm-overwrite.ts, without their actions.
 */
import { describeCause } from '../../errors.js';
import { ownerState, isThisProcess } from '../../process-identity.js';
import { dataBytes } from '../../engine/restore-target.js';
import { parseDatastorePath } from '../../vsphere/datastore.js';
import { listVms } from '../../vsphere/inventory.js';
import { resolvePlacement } from '../../vsphere/placement.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import { readRestoreMarker } from '../../vsphere/restore-marker.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { disksOf, snapshotsOf } from '../../vsphere/vm.js';
import { text, textAt } from '../../vsphere/xml.js';
import type { MachineRestoreContext } from '../machine-provider.js';
import { mapNetworks } from './restore-vm-networks.js';
import type { VmRestoreRequest } from './restore-vm-context.js';
import type { VsphereMachine } from './stored-vm.js';

/** Where the restore would put the VM, as the restore itself is asked (restore-vm-context.ts). */
export type VmRestorePlanRequest = Pick<VmRestoreRequest, 'name' | 'datastore' | 'host' | 'folder' | 'resourcePool' | 'network'> & {
  readonly overwrite: boolean;
  readonly writesWholeDisk: boolean;
};

export interface VmRestorePlan {
  readonly vm: string;
  /** Create a new VM, or write the disks of the existing one (--overwrite). */
  readonly action: 'create' | 'overwrite';
  /** The existing VM of that name. */
  readonly existing?: string;
  /** Unfinished restores of that name, whose process is gone: removed first. */
  readonly removesUnfinished: readonly string[];
  readonly datastore?: string;
  readonly host?: string;
  readonly folder?: string;
  readonly disks: readonly { readonly name: string; readonly label: string; readonly capacity: number; readonly bytesToWrite: number }[];
  readonly networks: readonly { readonly nic: string; readonly from: string; readonly to: string }[];
  /** What the transport would write: whole disks (https) or their data (vddk). */
  readonly bytesToWrite: number;
  /** Why the restore would be refused, as it would say. */
  readonly refused?: string;
}

export async function planVmRestore(session: VsphereSession, job: Omit<MachineRestoreContext<VsphereMachine>, 'pool' | 'repo'>,
  req: VmRestorePlanRequest): Promise<VmRestorePlan> {
  const { gen, machine } = job;
  const disks = job.disks.map((d) => ({
    name: d.stored.name, label: d.stored.label, capacity: d.stored.capacity, bytesToWrite: req.writesWholeDisk ? d.stored.capacity : dataBytes(d.index),
  }));
  const bytesToWrite = disks.reduce((n, d) => n + d.bytesToWrite, 0);
  const base = { vm: req.name, disks, bytesToWrite };

  const removesUnfinished: string[] = [];
  const existing = [];
  for (const vm of (await listVms(session)).filter((v) => v.name === req.name)) {
    const m = await readRestoreMarker(session, vm.ref);
    if (!m) { existing.push(vm); continue; }
    const state = ownerState(m);
    if (state === 'unknown' || (state === 'alive' && !isThisProcess(m))) {
      return { ...base, action: 'create', removesUnfinished, networks: [], refused: `VM ${vm.name} (${vm.ref.value}) is an unfinished restore by vmbkp process ${m.pid} on host ${m.host}, started ${m.started}` };
    }
    removesUnfinished.push(vm.ref.value);
  }
  if (existing.length > 0 && !req.overwrite) {
    return { ...base, action: 'create', existing: existing.map((v) => v.ref.value).join(', '), removesUnfinished, networks: [],
      refused: `a VM named ${req.name} exists on ${session.host} (${existing.map((v) => v.ref.value).join(', ')}); choose another --name, or pass --overwrite to write over its disks` };
  }
  if (existing.length > 1) return { ...base, action: 'overwrite', removesUnfinished, networks: [], refused: `VM name ${req.name} is ambiguous on ${session.host}: --overwrite needs one VM` };

  if (existing.length === 1) {
    const vm = existing[0]!;
    const props = await retrieveOne(session, vm.ref, ['config', 'runtime.powerState', 'snapshot']);
    const state = text(props.get('runtime.powerState'));
    const current = disksOf(props.get('config'));
    const refused = state !== 'poweredOff' ? `the VM is ${state === 'poweredOn' ? 'powered on' : state}; power it off first`
      : snapshotsOf(props.get('snapshot')).length > 0 ? 'the VM has snapshots; remove them first'
        : current.length !== job.disks.length || current.some((d, i) => d.capacity !== job.disks[i]!.stored.capacity) ? 'its disks are not the backup\'s (count or capacities)'
          : undefined;
    return { ...base, action: 'overwrite', existing: vm.ref.value, removesUnfinished, networks: [], ...(refused ? { refused: `restoring ${gen} over VM ${vm.name} refused: ${refused}` } : {}) };
  }

  const original = textAt(machine.config, 'files.vmPathName');
  const datastore = req.datastore ?? (original ? parseDatastorePath(original).datastore : undefined);
  if (datastore === undefined) return { ...base, action: 'create', removesUnfinished, networks: [], refused: `${gen} does not say which datastore the VM was on: give --datastore` };
  try {
    const place = await resolvePlacement(session, { datastore, host: req.host, folder: req.folder, resourcePool: req.resourcePool });
    const nics = await mapNetworks({ gen, machine, req: { session, network: req.network } }, place);
    const networks = nics.map((n) => ({ nic: n.nic.label, from: n.nic.network, to: n.network }));
    const placed = { datastore: place.datastore.name, host: place.host.name, folder: place.folder.name };
    const free = place.datastore.freeSpace;
    const need = job.disks.reduce((n, d, i) => n + (d.stored.thinProvisioned && !req.writesWholeDisk ? disks[i]!.bytesToWrite : d.stored.capacity), 0);
    const refused = free !== undefined && need > free ? `restoring ${gen} as VM ${req.name} needs ${need} bytes on datastore ${place.datastore.name}, which has ${free} free` : undefined;
    return { ...base, action: 'create', removesUnfinished, ...placed, networks, ...(refused ? { refused } : {}) };
  } catch (err) {
    return { ...base, action: 'create', removesUnfinished, datastore, networks: [], refused: describeCause(err) };
  }
}
