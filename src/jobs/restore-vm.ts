/**
 * A VM backup restored as a VM: a new VM made from the generation's stored
 * configuration (CreateVM_Task with its controllers, disks and NICs), each disk written
 * from the repository and read back against the generation's digests, then powered on
 * when asked. If anything fails after CreateVM_Task, the new VM is destroyed, so no
 * half-made VM is left behind. With `overwrite`, an existing powered-off VM of that
 * name with the same disks gets its disks written instead (it is never destroyed).
 */
import { hostname } from 'node:os';
import { AlreadyExistsError, IoError, InputError, NotFoundError, RepositoryDamagedError, VmbkpError, describeCause } from '../errors.js';
import type { Progress } from '../engine/backup-disk.js';
import { ChunkPool } from '../engine/chunk-pool.js';
import { restoreDisk } from '../engine/restore-disk.js';
import { restoreDiskInOrder } from '../engine/restore-ordered.js';
import { verifyWritten } from '../engine/verify-written.js';
import { BlobCodec } from '../repository/compression.js';
import { type DiskIndex, loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { failpoint } from '../failpoints.js';
import type { OpenVmDisk, VmDiskTarget } from '../sources/vsphere-target.js';
import { type NewDisk, type StoredNic, createVm, ethernetCards, notRecreated, storageControllers, vmConfigSpec } from '../vsphere/create-vm.js';
import { datacenterPathOf, parseDatastorePath } from '../vsphere/datastore.js';
import { faultOf } from '../vsphere/errors.js';
import { type VmRef, listVms } from '../vsphere/inventory.js';
import { type NetworkInfo, listNetworks, nicBacking } from '../vsphere/network.js';
import { type Placement, resolvePlacement } from '../vsphere/placement.js';
import { retrieveOne } from '../vsphere/property-collector.js';
import type { VsphereSession } from '../vsphere/session.js';
import { destroyVm, powerOnVm } from '../vsphere/vm-lifecycle.js';
import { RESTORE_MARKER_KEY, clearRestoreMarker, readRestoreMarker, restoreMarkerValue } from '../vsphere/restore-marker.js';
import { pidAlive } from './pid.js';
import { type VirtualDiskInfo, disksOf, snapshotsOf } from '../vsphere/vm.js';
import { type MoRef, type Typed, type XmlNode, text, textAt } from '../vsphere/xml.js';
import type { VsphereMachine } from './backup-vm.js';
import { resolveGeneration } from './resolve.js';
import { storedMachine } from './stored-machine.js';

export type VmRestoreEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'disk-start'; disk: string; phase: 'write' | 'verify'; bytesTotal: number }
  | { type: 'progress'; progress: Progress }
  | { type: 'disk-done'; disk: string };

export interface VmRestoreRequest {
  readonly repo: Repository;
  readonly session: VsphereSession;
  readonly set: string;
  /** A generation number, or "latest". */
  readonly generation: string;
  /** The new VM's name (with `overwrite`: the existing VM whose disks are written). */
  readonly name: string;
  /** Default: the datastore of the original VM's configuration file. */
  readonly datastore?: string | undefined;
  readonly host?: string | undefined;
  /** Inventory path of a VM folder. */
  readonly folder?: string | undefined;
  readonly resourcePool?: string | undefined;
  /** Old network (name, or distributed port group key) → new network name; unmapped NICs keep theirs. */
  readonly network?: Readonly<Record<string, string>> | undefined;
  readonly powerOn?: boolean | undefined;
  /** Keep BIOS and instance UUIDs and MAC addresses (default: new ones). */
  readonly keepIdentity?: boolean | undefined;
  /** Write the disks of an existing powered-off VM of that name. */
  readonly overwrite?: boolean | undefined;
  /** The transport: how a disk of the VM becomes a target. */
  readonly openDisk: OpenVmDisk;
  /** The transport writes every byte of a disk (https): a thin disk then takes its capacity on the datastore. */
  readonly writesWholeDisk: boolean;
  readonly workers?: number | undefined;
  /** Stops the restore at the next write (SIGINT): a VM it created is then destroyed like after any failure. */
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: (e: VmRestoreEvent) => void;
}

export interface RestoredDisk {
  /** The disk's name in the generation (its key in the backed-up VM). */
  readonly name: string;
  /** Its key in the restored VM. */
  readonly key: number;
  readonly fileName: string;
  readonly size: number;
  readonly bytesWritten: number;
  readonly writeMs: number;
  readonly verifyMs: number;
}

export interface VmRestoreResult {
  readonly set: string;
  readonly generation: number;
  readonly vm: string;
  readonly moref: string;
  /** False when `overwrite` wrote the disks of an existing VM. */
  readonly created: boolean;
  readonly poweredOn: boolean;
  readonly identity: 'new' | 'kept';
  readonly disks: readonly RestoredDisk[];
  readonly durationMs: number;
}

interface DiskPlan {
  readonly stored: VsphereMachine['disks'][number];
  readonly index: DiskIndex;
}

const GiB = 1024 ** 3;
const gib = (n: number) => `${(n / GiB).toFixed(n < GiB ? 2 : 1)} GiB`;

/** Bytes of a disk that hold data (what a thin disk needs when only data is written). */
function dataBytes(index: DiskIndex): number {
  let n = 0;
  for (let i = 0; i < index.count; i++) if (!index.isZero(i)) n += index.chunkLength(i);
  return n;
}

function checkInterrupted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new IoError(`${what} was interrupted (${String(signal.reason ?? 'aborted')})`);
}

/** The target, failing its next call once `signal` fires. */
function interruptible(t: VmDiskTarget, signal: AbortSignal | undefined, what: string): VmDiskTarget {
  if (!signal) return t;
  const check = () => checkInterrupted(signal, `restoring ${what}`);
  return {
    description: t.description, size: t.size, zeroed: t.zeroed, ...(t.sequential ? { sequential: true } : {}),
    write: async (o, d) => { check(); await t.write(o, d); },
    zero: async (o, l) => { check(); await t.zero(o, l); },
    flush: async () => { check(); await t.flush(); },
    readBack: async (o, l, into) => { check(); await t.readBack(o, l, into); },
    close: () => t.close(),
    ...(t.discard ? { discard: () => t.discard!() } : {}),
  };
}

/** The same error with a note on what became of the VM; its code (and exit code) is kept. */
function withNote(err: unknown, note: string): Error {
  if (err instanceof VmbkpError) return new VmbkpError(err.code, `${err.message} (${note})`, { cause: err });
  return new IoError(`${describeCause(err)} (${note})`, { cause: err });
}

export async function restoreVm(req: VmRestoreRequest): Promise<VmRestoreResult> {
  const t0 = performance.now();
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  const lock = await RepositoryLock.acquire(req.repo.backend, 'shared', `restore of ${req.set}`, warn);
  try {
    const manifest = await resolveGeneration(req.repo, req.set, req.generation);
    const machine = storedMachine(manifest);
    const gen = `set ${manifest.set} generation ${manifest.generation}`;
    for (const d of machine.disks.filter((x) => x.skipped)) {
      warn(`disk ${d.key} (${d.label}) of ${gen} was not backed up (${d.skipped}): the restored VM does not get it`);
    }
    await req.repo.loadIndex();
    const codec = new BlobCodec();
    const plans: DiskPlan[] = [];
    for (const stored of machine.disks.filter((x) => !x.skipped)) {
      const record = manifest.disks.find((r) => r.name === stored.name);
      if (!record) throw new RepositoryDamagedError(`${gen} describes disk ${stored.name} of the VM but holds no such disk`);
      if (record.size !== stored.capacity) throw new RepositoryDamagedError(`${gen}: disk ${stored.name} holds ${record.size} bytes, the VM's disk has ${stored.capacity}`);
      plans.push({ stored, index: await loadDiskIndex(req.repo, record, codec, `restoring ${gen} disk ${stored.name}`) });
    }

    const existing = await removeIncompleteRestores(req, (await listVms(req.session)).filter((v) => v.name === req.name), warn);
    if (existing.length > 0 && !req.overwrite) {
      throw new AlreadyExistsError(`restoring ${gen} as VM ${req.name} refused: a VM of that name exists on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}); choose another --name, or pass --overwrite to write over its disks`);
    }
    if (existing.length > 1) throw new InputError(`VM name ${req.name} is ambiguous on ${req.session.host} (${existing.map((v) => v.ref.value).join(', ')}): --overwrite needs one VM`);

    const pool = new ChunkPool(req.workers);
    try {
      const ctx: RestoreContext = { req, emit, warn, pool, gen, machine, plans };
      const result = existing.length === 1 ? await overwriteVm(ctx, existing[0]!) : await createAndRestore(ctx);
      return { ...result, set: manifest.set, generation: manifest.generation, durationMs: Math.round(performance.now() - t0) };
    } finally {
      await pool.close();
    }
  } finally {
    await lock.release();
  }
}

/**
 * VMs of the target name that are restores which never finished (marked, see
 * restore-marker.ts): one left by a dead process of this host is removed, one whose
 * process still runs, or that another host made, is refused. Returns the other VMs.
 */
async function removeIncompleteRestores(req: VmRestoreRequest, vms: readonly VmRef[], warn: (m: string) => void): Promise<VmRef[]> {
  const rest: VmRef[] = [];
  for (const vm of vms) {
    const m = await readRestoreMarker(req.session, vm.ref);
    if (!m) {
      rest.push(vm);
      continue;
    }
    const what = `VM ${vm.name} (${vm.ref.value}) is an unfinished restore by vmbkp process ${m.pid} on host ${m.host}, started ${m.started}`;
    if (m.host !== hostname()) throw new AlreadyExistsError(`${what}: if no restore runs there any more, remove that VM, then restore again`);
    if (m.pid !== process.pid && pidAlive(m.pid)) throw new AlreadyExistsError(`${what}, which still runs`);
    warn(`removing VM ${vm.name} (${vm.ref.value}): an unfinished restore by vmbkp process ${m.pid} of this host, started ${m.started}, whose process is gone`);
    await destroyVm(req.session, vm.ref, `removing the unfinished restore ${vm.name}`);
  }
  return rest;
}

interface RestoreContext {
  readonly req: VmRestoreRequest;
  readonly emit: (e: VmRestoreEvent) => void;
  readonly warn: (m: string) => void;
  readonly pool: ChunkPool;
  readonly gen: string;
  readonly machine: VsphereMachine;
  readonly plans: readonly DiskPlan[];
}

type RestoreOutcome = Omit<VmRestoreResult, 'set' | 'generation' | 'durationMs'>;

async function createAndRestore(ctx: RestoreContext): Promise<RestoreOutcome> {
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
  const marker = restoreMarkerValue({ host: hostname(), pid: process.pid, started: new Date().toISOString() });
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
    restored = [];
    for (const [i, p] of plans.entries()) restored.push(await writeDisk(ctx, vm, p, targets[i]!, place.datacenter.path));
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

/** Each NIC's backing: mapped by --network, else on the network of the same name (or port group key). */
async function mapNetworks(ctx: RestoreContext, place: Placement): Promise<{ nic: StoredNic; backing: Typed }[]> {
  const { req, gen } = ctx;
  const nics = ethernetCards(ctx.machine.config);
  const nets = await listNetworks(req.session, place.datacenter.networkFolder);
  const have = () => nets.map((n) => n.name).sort().join(', ') || 'none';
  const mapping = new Map(Object.entries(req.network ?? {}));
  // A distributed port group's NIC names its key; the user may name the port group instead.
  const sourceName = (nic: StoredNic) => nic.distributed ? nets.find((n) => n.kind === 'distributed' && n.portgroupKey === nic.network)?.name : nic.network;
  for (const old of mapping.keys()) {
    if (!nics.some((nic) => nic.network === old || sourceName(nic) === old)) {
      const on = [...new Set(nics.map((nic) => sourceName(nic) ?? nic.network))].join(', ') || 'no network';
      throw new InputError(`--network maps ${JSON.stringify(old)}, but no NIC of ${gen} is on it (its NICs are on: ${on})`);
    }
  }
  return nics.map((nic) => {
    const name = sourceName(nic);
    const mapped = mapping.get(nic.network) ?? (name !== undefined ? mapping.get(name) : undefined);
    let net: NetworkInfo | undefined;
    if (mapped !== undefined) {
      net = nets.find((n) => n.name === mapped);
      if (!net) throw new NotFoundError(`network ${JSON.stringify(mapped)} (--network ${name ?? nic.network}=${mapped}) does not exist in datacenter ${place.datacenter.name} (it has: ${have()})`);
    } else {
      net = nic.distributed ? nets.find((n) => n.kind === 'distributed' && n.portgroupKey === nic.network) : nets.find((n) => n.name === nic.network);
      if (!net) {
        throw new NotFoundError(`network ${JSON.stringify(nic.network)} of ${nic.label} does not exist in datacenter ${place.datacenter.name} (it has: ${have()}): map it with --network ${JSON.stringify(`${nic.network}=NEW`)}`);
      }
    }
    return { nic, backing: nicBacking(net) };
  });
}

/** The new VM's disks in the order of the plans: same controller type and bus, same unit, same capacity. */
function matchCreatedDisks(ctx: RestoreContext, stored: XmlNode, current: XmlNode | undefined, vm: VmRef): VirtualDiskInfo[] {
  const oldCtl = new Map(storageControllers(stored).map((c) => [c.key, c]));
  const newCtl = storageControllers(current);
  const created = disksOf(current);
  return ctx.plans.map((p) => {
    const c = oldCtl.get(p.stored.controllerKey);
    const ctl = c ? newCtl.find((n) => n.type === c.type && n.busNumber === c.busNumber) : undefined;
    const d = ctl ? created.find((x) => x.controllerKey === ctl.key && x.unitNumber === p.stored.unitNumber) : undefined;
    const where = `${c?.type ?? `controller ${p.stored.controllerKey}`} ${c?.busNumber ?? '?'}:${p.stored.unitNumber}`;
    if (!d) throw new IoError(`VM ${vm.name} was created without the disk at ${where} (disk ${p.stored.name} of ${ctx.gen})`);
    if (d.capacity !== p.stored.capacity) throw new IoError(`VM ${vm.name}'s disk at ${where} has ${d.capacity} bytes, disk ${p.stored.name} of ${ctx.gen} has ${p.stored.capacity}`);
    return d;
  });
}

async function writeDisk(ctx: RestoreContext, vm: VmRef, p: DiskPlan, disk: VirtualDiskInfo, datacenterPath: string): Promise<RestoredDisk> {
  const { req, emit, pool } = ctx;
  const what = `disk ${disk.key} of VM ${vm.name} (disk ${p.stored.name} of ${ctx.gen})`;
  const onProgress = (progress: Progress) => emit({ type: 'progress', progress });
  emit({ type: 'disk-start', disk: p.stored.name, phase: 'write', bytesTotal: dataBytes(p.index) });
  const target = interruptible(await req.openDisk({ session: req.session, vm, disk, datacenterPath }), req.signal, what);
  try {
    const tw = performance.now();
    const restore = target.sequential ? restoreDiskInOrder : restoreDisk;
    const { bytesWritten } = await restore({ repo: req.repo, pool, index: p.index, target, what, onProgress });
    const writeMs = Math.round(performance.now() - tw);
    emit({ type: 'disk-start', disk: p.stored.name, phase: 'verify', bytesTotal: p.index.size });
    const tv = performance.now();
    await verifyWritten({ pool, index: p.index, read: (o, l, into) => target.readBack(o, l, into), what, onProgress });
    const verifyMs = Math.round(performance.now() - tv);
    emit({ type: 'disk-done', disk: p.stored.name });
    return { name: p.stored.name, key: disk.key, fileName: disk.fileName, size: p.index.size, bytesWritten, writeMs, verifyMs };
  } finally {
    await target.close().catch(() => {});
  }
}

async function powerOnIfAsked(ctx: RestoreContext, vm: VmRef): Promise<boolean> {
  if (!ctx.req.powerOn) return false;
  if (ctx.req.signal?.aborted) throw new IoError(`powering on VM ${vm.name} was interrupted (${String(ctx.req.signal.reason)}): the VM was restored and verified, and is left powered off`);
  ctx.emit({ type: 'step', message: `powering on VM ${vm.name}` });
  try {
    await powerOnVm(ctx.req.session, vm.ref, `powering on VM ${vm.name}`);
  } catch (err) {
    // The VM is complete and verified: keep it, and say so.
    throw withNote(err, `VM ${vm.name} was restored and verified, and is left powered off`);
  }
  return true;
}

/** --overwrite onto an existing VM: powered off, no snapshots, the same disks (count and capacities, in device order). */
async function overwriteVm(ctx: RestoreContext, vm: VmRef): Promise<RestoreOutcome> {
  const { req, gen, plans } = ctx;
  const ignored = (['datastore', 'host', 'folder', 'resourcePool', 'network'] as const).filter((k) => req[k] !== undefined);
  if (ignored.length > 0 || req.keepIdentity) {
    ctx.warn(`VM ${vm.name} exists: only its disks are written; ${[...ignored.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`), ...(req.keepIdentity ? ['--keep-identity'] : [])].join(', ')} ignored`);
  }
  const props = await retrieveOne(req.session, vm.ref, ['config', 'runtime.powerState', 'snapshot']);
  const state = text(props.get('runtime.powerState'));
  if (state !== 'poweredOff') {
    const words: Record<string, string> = { poweredOn: 'powered on', suspended: 'suspended' };
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: the VM is ${words[state] ?? 'not powered off'}; power it off first`);
  }
  if (snapshotsOf(props.get('snapshot')).length > 0) {
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: the VM has snapshots; remove them first`);
  }
  const current = disksOf(props.get('config'));
  const sizes = (xs: readonly number[]) => xs.map((n) => `${n}`).join(', ') || 'none';
  if (current.length !== plans.length || current.some((d, i) => d.capacity !== plans[i]!.stored.capacity)) {
    throw new InputError(`restoring ${gen} over VM ${vm.name} refused: its disks (${sizes(current.map((d) => d.capacity))} bytes) are not the backup's (${sizes(plans.map((p) => p.stored.capacity))} bytes)`);
  }
  const dcPath = await datacenterPathOf(req.session, vm.ref);
  const restored: RestoredDisk[] = [];
  try {
    for (const [i, p] of plans.entries()) restored.push(await writeDisk(ctx, vm, p, current[i]!, dcPath));
  } catch (err) {
    throw withNote(err, `VM ${vm.name}'s disks are partly overwritten: restore again`);
  }
  const poweredOn = await powerOnIfAsked(ctx, vm);
  return { vm: vm.name, moref: vm.ref.value, created: false, poweredOn, identity: 'kept', disks: restored };
}
