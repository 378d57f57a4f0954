/**
 * A restore as a new VM: placement, space check, CreateVM_Task (marked as unfinished
 * until every disk is written and checked), its disks matched to the stored ones for the
 * job to write, and the VM destroyed if anything fails after it was made.
 */
import { AlreadyExistsError, IoError, InputError, NotFoundError, checkInterrupted, describeCause, withNote } from '../../errors.js';
import { dataBytes } from '../../engine/restore-target.js';
import { failpoint } from '../../failpoints.js';
import { thisProcess } from '../../process-identity.js';
import { type NewDisk, createVm, notRecreated, vmConfigSpec } from '../../vsphere/create-vm.js';
import { parseDatastorePath } from '../../vsphere/datastore.js';
import { faultOf } from '../../vsphere/errors.js';
import { type VmRef, listVms } from '../../vsphere/inventory.js';
import { type Placement, resolvePlacement } from '../../vsphere/placement.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import { destroyVm } from '../../vsphere/vm-lifecycle.js';
import { NfcImport } from '../../sources/vsphere-nfc-import.js';
import type { VmDisk } from '../../sources/vsphere-target.js';
import { RESTORE_MARKER_KEY, clearRestoreMarker, restoreMarkerValue } from '../../vsphere/restore-marker.js';
import { type MoRef, textAt } from '../../vsphere/xml.js';
import type { VirtualDiskInfo } from '../../vsphere/vm.js';
import type { MachineUnderRestore } from '../machine-provider.js';
import type { RestoreContext, RestoreOutcome } from './restore-vm-context.js';
import { disksToRestore, matchCreatedDisks, restoredDisks } from './restore-vm-disks.js';
import { powerOnIfAsked } from './restore-vm-finish.js';
import { restoreNvram } from './restore-vm-nvram.js';
import { mapNetworks } from './restore-vm-networks.js';

const GiB = 1024 ** 3;
const gib = (n: number) => `${(n / GiB).toFixed(n < GiB ? 2 : 1)} GiB`;

/**
 * The new VM, created and marked as an unfinished restore, its disks matched to the
 * stored ones; a failure after CreateVM_Task destroys it.
 */
export async function createForRestore(ctx: RestoreContext): Promise<MachineUnderRestore<RestoreOutcome>> {
  const { req, emit, gen, machine, plans } = ctx;
  const { session } = req;
  const config = machine.config;
  const original = textAt(config, 'files.vmPathName');
  let datastore = req.datastore;
  if (datastore === undefined) {
    if (!original) throw new InputError(`${gen} does not say which datastore the VM was on: give --datastore`);
    datastore = parseDatastorePath(original).datastore;
  }
  let place: Placement;
  try {
    place = await resolvePlacement(session, { datastore, host: req.host, folder: req.folder, resourcePool: req.resourcePool });
  } catch (err) {
    if (req.datastore === undefined && err instanceof NotFoundError && err.message.startsWith('datastore ')) {
      throw new NotFoundError(`${err.message}; it is the original VM's datastore: choose one with --datastore`, { cause: err });
    }
    throw err;
  }

  const nics = await mapNetworks(ctx, place);
  const dropped = notRecreated(config);
  if (dropped.length > 0) ctx.warn(`${gen}: devices not recreated: ${[...new Set(dropped)].join(', ')}`);

  const disks: NewDisk[] = plans.map((p) => ({
    key: p.stored.key, controllerKey: p.stored.controllerKey, unitNumber: p.stored.unitNumber, capacity: p.stored.capacity,
    thinProvisioned: p.stored.thinProvisioned ?? false, diskMode: p.stored.diskMode,
  }));
  const need = plans.reduce((n, p, i) => n + (disks[i]!.thinProvisioned && !req.writesWholeDisk ? dataBytes(p.index) : p.stored.capacity), 0);
  const free = place.datastore.freeSpace;
  if (free !== undefined && need > free) {
    throw new IoError(`restoring ${gen} as VM ${req.name} needs ${gib(need)} on datastore ${place.datastore.name}, which has ${gib(free)} free${req.writesWholeDisk ? ' (the https transport writes whole disks; vddk writes only data)' : ''}`);
  }

  const keepIdentity = !!req.keepIdentity;
  // Marked until every disk is written and checked, so that a later restore can remove it
  // if this process dies without cleaning up (see restore-marker.ts).
  const marker = restoreMarkerValue({ ...thisProcess(), started: new Date().toISOString() });
  const spec = vmConfigSpec({ name: req.name, config, datastore: place.datastore.name, disks, nics, keepIdentity, extraConfig: { [RESTORE_MARKER_KEY]: marker } });
  emit({ type: 'step', message: `creating VM ${req.name} on host ${place.host.name}, datastore ${place.datastore.name}` });
  let ref: MoRef;
  let imp: NfcImport | undefined;
  try {
    const where = { folder: place.folder.ref, pool: place.pool.ref, host: place.host.ref };
    if (req.importsVm) {
      imp = await NfcImport.start(session, where, spec, `importing VM ${req.name}`);
      ref = imp.vm;
    } else {
      ref = await createVm(session, where, spec, `creating VM ${req.name}`);
    }
  } catch (err) {
    // A failed task may still have made the VM: the name was free before, so one of that name now is ours.
    for (const left of (await listVms(session).catch(() => [] as VmRef[])).filter((v) => v.name === req.name)) {
      await destroyVm(session, left.ref, `removing VM ${req.name}`).catch(() => {});
    }
    throw createError(err, ctx, place);
  }

  const vm: VmRef = { ref, name: req.name };
  const abandon = async (err: unknown): Promise<Error> => {
    emit({ type: 'step', message: `removing VM ${req.name}: the restore failed` });
    try {
      if (imp) await abandonImport(imp, req.name);
      else await destroyVm(session, ref, `removing the incomplete VM ${req.name}`);
    } catch (cleanup) {
      return withNote(err, `removing the incomplete VM ${req.name} (${ref.value}) failed too: ${describeCause(cleanup)}; remove it by hand`);
    }
    return withNote(err, `the incomplete VM ${req.name} was removed`);
  };
  let targets: VirtualDiskInfo[];
  try {
    await failpoint('restore:vm-created');
    checkInterrupted(req.signal, `restoring ${gen} as VM ${req.name}`);
    const props = await retrieveOne(session, ref, ['config']);
    const current = props.get('config');
    targets = matchCreatedDisks(ctx, config, current, vm);
  } catch (err) {
    throw await abandon(err);
  }
  const nfc = imp;
  const diskCtx = nfc ? { ...ctx, req: { ...req, openDisk: (d: VmDisk) => nfc.openDisk(d) } } : ctx;
  return {
    disks: disksToRestore(diskCtx, vm, targets, place.datacenter.path),
    ...(nfc ? { written: () => nfc.written() } : {}),
    // The firmware settings go in once the disks are written and checked, before the marker goes and the VM may power on.
    complete: async () => {
      await restoreNvram(ctx, vm, place.datacenter.path, true);
      await clearRestoreMarker(session, ref, `marking VM ${req.name} as completely restored`);
    },
    abandon,
    finish: async (written) => {
      const restored = restoredDisks(targets, written);
      const poweredOn = await powerOnIfAsked(ctx, vm);
      return { vm: req.name, moref: ref.value, created: true, poweredOn, identity: keepIdentity ? 'kept' : 'new', disks: restored };
    },
  };
}

/**
 * Ends a failed import: the lease aborted (vCenter then removes the VM it made), and the VM
 * destroyed if it is still there (the lease was already complete: the disks were being read back).
 */
async function abandonImport(imp: NfcImport, name: string): Promise<void> {
  // A lease that timed out cannot be aborted, but vCenter has removed its VM already.
  const abortError = await imp.abort().then(() => undefined, (err: unknown) => err);
  if ((await listVms(imp.session)).some((v) => v.ref.value === imp.vm.value)) {
    try {
      await destroyVm(imp.session, imp.vm, `removing the incomplete VM ${name}`);
    } catch (err) {
      throw abortError === undefined ? err : withNote(err, `aborting its import lease failed too: ${describeCause(abortError)}`);
    }
  }
}

/** CreateVM_Task's faults in the user's words; the code says what kind of problem it is. */
function createError(err: unknown, ctx: RestoreContext, place: Placement): unknown {
  const what = `creating VM ${ctx.req.name} for ${ctx.gen} failed`;
  switch (faultOf(err)) {
    case 'DuplicateName':
      return new AlreadyExistsError(`${what}: a VM of that name exists in folder ${place.folder.name}; choose another --name`, { cause: err });
    case 'NoDiskSpace':
    case 'InsufficientDisk':
    case 'InsufficientStorageSpace':
      return new IoError(`${what}: datastore ${place.datastore.name} is out of space: ${describeCause(err).replace(/^.*? failed: /, '')}`, { cause: err });
    default:
      return err;
  }
}
