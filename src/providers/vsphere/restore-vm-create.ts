/**
 * A restore as a new VM: placement, space check, CreateVM_Task (marked as unfinished
 * until every disk is written and checked), the disks written, and the VM destroyed if
 * anything fails after it was made.
 */
import { AlreadyExistsError, IoError, InputError, NotFoundError, describeCause } from '../../errors.js';
import { failpoint } from '../../failpoints.js';
import { thisProcess } from '../../process-identity.js';
import { type NewDisk, createVm, notRecreated, vmConfigSpec } from '../../vsphere/create-vm.js';
import { parseDatastorePath } from '../../vsphere/datastore.js';
import { faultOf } from '../../vsphere/errors.js';
import { type VmRef, listVms } from '../../vsphere/inventory.js';
import { type Placement, resolvePlacement } from '../../vsphere/placement.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import { destroyVm } from '../../vsphere/vm-lifecycle.js';
import { RESTORE_MARKER_KEY, clearRestoreMarker, restoreMarkerValue } from '../../vsphere/restore-marker.js';
import { type MoRef, textAt } from '../../vsphere/xml.js';
import type { RestoreContext, RestoreOutcome, RestoredDisk } from './restore-vm-context.js';
import { checkInterrupted, dataBytes, matchCreatedDisks, writeDisks } from './restore-vm-disks.js';
import { powerOnIfAsked, withNote } from './restore-vm-finish.js';
import { mapNetworks } from './restore-vm-networks.js';

const GiB = 1024 ** 3;
const gib = (n: number) => `${(n / GiB).toFixed(n < GiB ? 2 : 1)} GiB`;

export async function createAndRestore(ctx: RestoreContext): Promise<RestoreOutcome> {
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
  try {
    ref = await createVm(session, { folder: place.folder.ref, pool: place.pool.ref, host: place.host.ref }, spec, `creating VM ${req.name}`);
  } catch (err) {
    // A failed task may still have made the VM: the name was free before, so one of that name now is ours.
    for (const left of (await listVms(session).catch(() => [] as VmRef[])).filter((v) => v.name === req.name)) {
      await destroyVm(session, left.ref, `removing VM ${req.name}`).catch(() => {});
    }
    throw createError(err, ctx, place);
  }

  const vm: VmRef = { ref, name: req.name };
  let restored: RestoredDisk[];
  try {
    await failpoint('restore:vm-created');
    checkInterrupted(req.signal, `restoring ${gen} as VM ${req.name}`);
    const props = await retrieveOne(session, ref, ['config']);
    const current = props.get('config');
    const targets = matchCreatedDisks(ctx, config, current, vm);
    restored = await writeDisks(ctx, vm, targets, place.datacenter.path);
    await clearRestoreMarker(session, ref, `marking VM ${req.name} as completely restored`);
  } catch (err) {
    emit({ type: 'step', message: `removing VM ${req.name}: the restore failed` });
    try {
      await destroyVm(session, ref, `removing the incomplete VM ${req.name}`);
    } catch (cleanup) {
      throw withNote(err, `removing the incomplete VM ${req.name} (${ref.value}) failed too: ${describeCause(cleanup)}; remove it by hand`);
    }
    throw withNote(err, `the incomplete VM ${req.name} was removed`);
  }
  const poweredOn = await powerOnIfAsked(ctx, vm);
  return { vm: req.name, moref: ref.value, created: true, poweredOn, identity: keepIdentity ? 'kept' : 'new', disks: restored };
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
