/**
 * Where a new VM goes: datacenter, VM folder, resource pool, host and datastore, from
 * what the user named (each optional) and sensible defaults. Every name is checked
 * before anything is created, and a name that does not exist is reported with what
 * does exist.
 */
import { InputError, NotFoundError } from '../errors.js';
import { type ObjectContent, retrieveInContainer, retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { datacenterPathOf } from './datastore.js';
import { type MoRef, child, children, moRefOf, text } from './xml.js';

export interface PlacementRequest {
  /** Datastore name for the VM's files and disks. */
  readonly datastore: string;
  readonly host?: string | undefined;
  /** Inventory path of a VM folder ("DC0/vm/restored"); the datacenter's VM folder by default. */
  readonly folder?: string | undefined;
  /** A resource pool's name, or its inventory path ("DC0/host/cluster1/Resources/test"). */
  readonly resourcePool?: string | undefined;
}

export interface Named {
  readonly ref: MoRef;
  readonly name: string;
}

export interface Placement {
  readonly datacenter: Named & { readonly path: string; readonly networkFolder: MoRef };
  readonly folder: Named;
  readonly pool: Named;
  readonly host: Named;
  readonly datastore: Named & { readonly freeSpace: number | undefined };
}

const names = (objs: readonly ObjectContent[]): string => objs.map((o) => text(o.props.get('name'))).sort().join(', ') || 'none';
const refs = (node: ReturnType<ObjectContent['props']['get']>, name: string): MoRef[] =>
  children(node, name).map((n) => moRefOf(n)).filter((r): r is MoRef => r !== undefined);

function freeSpace(ds: ObjectContent): number | undefined {
  const t = text(ds.props.get('summary.freeSpace'));
  return t === '' || !Number.isFinite(Number(t)) ? undefined : Number(t);
}

async function findByPath(session: VsphereSession, inventoryPath: string): Promise<MoRef | undefined> {
  const res = await session.call('FindByInventoryPath', session.content.searchIndex, { inventoryPath: inventoryPath.replace(/^\/+|\/+$/g, '') });
  return moRefOf(child(res, 'returnval'));
}

/** The datacenter above `obj`, with its inventory path (what /folder's dcPath wants). */
async function datacenterAbove(session: VsphereSession, obj: MoRef): Promise<MoRef | undefined> {
  let cur: MoRef | undefined = obj;
  while (cur && cur.type !== 'Datacenter') cur = moRefOf((await retrieveOne(session, cur, ['parent'])).get('parent'));
  return cur;
}

export async function resolvePlacement(session: VsphereSession, req: PlacementRequest): Promise<Placement> {
  const dcs = await retrieveInContainer(session, session.content.rootFolder, 'Datacenter', ['name', 'vmFolder', 'hostFolder', 'datastoreFolder', 'networkFolder']);
  let folder: Named | undefined;
  let dc: ObjectContent | undefined;
  if (req.folder !== undefined) {
    const ref = await findByPath(session, req.folder);
    if (!ref || ref.type !== 'Folder') throw new NotFoundError(`VM folder ${JSON.stringify(req.folder)} does not exist on ${session.host} (give an inventory path such as DC0/vm/restored)`);
    const props = await retrieveOne(session, ref, ['name', 'childType']);
    if (!children(props.get('childType'), 'string').map((n) => text(n)).includes('VirtualMachine')) {
      throw new InputError(`${JSON.stringify(req.folder)} on ${session.host} is not a VM folder`);
    }
    folder = { ref, name: text(props.get('name')) };
    const dcRef = await datacenterAbove(session, ref);
    dc = dcs.find((d) => d.obj.value === dcRef?.value);
  } else if (dcs.length === 1) {
    dc = dcs[0];
  } else {
    // Several datacenters: the one holding the datastore, if that is unambiguous.
    const holding: ObjectContent[] = [];
    for (const d of dcs) {
      const dsFolder = moRefOf(d.props.get('datastoreFolder'));
      if (!dsFolder) continue;
      const found = await retrieveInContainer(session, dsFolder, 'Datastore', ['name']);
      if (found.some((x) => text(x.props.get('name')) === req.datastore)) holding.push(d);
    }
    if (holding.length !== 1) {
      throw new InputError(`${session.host} has ${dcs.length} datacenters (${names(dcs)}), ${holding.length === 0 ? 'none of them with' : 'several with'} datastore ${req.datastore}: choose one with --folder DATACENTER/vm`);
    }
    dc = holding[0];
  }
  if (!dc) throw new NotFoundError(`no datacenter found on ${session.host}`);
  const dcName = text(dc.props.get('name'));
  const dcRef = (k: string): MoRef => {
    const r = moRefOf(dc!.props.get(k));
    if (!r) throw new NotFoundError(`datacenter ${dcName} on ${session.host} has no ${k}`);
    return r;
  };
  folder ??= { ref: dcRef('vmFolder'), name: 'vm' };

  const stores = await retrieveInContainer(session, dcRef('datastoreFolder'), 'Datastore', ['name', 'summary.freeSpace', 'summary.accessible']);
  const ds = stores.find((s) => text(s.props.get('name')) === req.datastore);
  if (!ds) throw new NotFoundError(`datastore ${JSON.stringify(req.datastore)} does not exist in datacenter ${dcName} (it has: ${names(stores)})`);
  if (text(ds.props.get('summary.accessible')) === 'false') throw new InputError(`datastore ${req.datastore} in datacenter ${dcName} is not accessible`);

  const hosts = await retrieveInContainer(session, dcRef('hostFolder'), 'HostSystem', ['name', 'parent', 'datastore', 'runtime.connectionState']);
  const mounts = (h: ObjectContent) => refs(h.props.get('datastore'), 'ManagedObjectReference').some((r) => r.value === ds.obj.value);
  let host: ObjectContent | undefined;
  if (req.host !== undefined) {
    host = hosts.find((h) => text(h.props.get('name')) === req.host);
    if (!host) throw new NotFoundError(`host ${JSON.stringify(req.host)} does not exist in datacenter ${dcName} (it has: ${names(hosts)})`);
    if (!mounts(host)) throw new InputError(`host ${req.host} does not mount datastore ${req.datastore}: choose another --host or --datastore`);
  }

  let pool: Named | undefined;
  if (req.resourcePool !== undefined) {
    if (req.resourcePool.includes('/')) {
      const ref = await findByPath(session, req.resourcePool);
      if (!ref || ref.type !== 'ResourcePool') throw new NotFoundError(`resource pool ${JSON.stringify(req.resourcePool)} does not exist on ${session.host}`);
      pool = { ref, name: req.resourcePool };
    } else {
      const pools = await retrieveInContainer(session, dcRef('hostFolder'), 'ResourcePool', ['name', 'owner']);
      let hits = pools.filter((p) => text(p.props.get('name')) === req.resourcePool);
      // "Resources" exists once per cluster or host: the one of the chosen host wins.
      if (hits.length > 1 && host) hits = hits.filter((p) => moRefOf(p.props.get('owner'))?.value === moRefOf(host!.props.get('parent'))?.value);
      if (hits.length === 0) throw new NotFoundError(`resource pool ${JSON.stringify(req.resourcePool)} does not exist in datacenter ${dcName} (it has: ${names(pools)})`);
      if (hits.length > 1) throw new InputError(`resource pool name ${JSON.stringify(req.resourcePool)} is ambiguous in datacenter ${dcName}: give its inventory path (DATACENTER/host/CLUSTER/Resources/…) or --host`);
      pool = { ref: hits[0]!.obj, name: req.resourcePool };
    }
  }

  // The compute resource: the pool's owner, the host's parent, or the first that reaches the datastore.
  let owner: MoRef | undefined;
  if (pool) owner = moRefOf((await retrieveOne(session, pool.ref, ['owner'])).get('owner'));
  else if (host) owner = moRefOf(host.props.get('parent'));
  else owner = hosts.filter((h) => mounts(h) && text(h.props.get('runtime.connectionState')) !== 'disconnected').map((h) => moRefOf(h.props.get('parent')))[0];
  if (!owner) throw new NotFoundError(`no host in datacenter ${dcName} mounts datastore ${req.datastore}`);
  if (host && moRefOf(host.props.get('parent'))?.value !== owner.value) {
    throw new InputError(`host ${req.host} is not part of the cluster or host of resource pool ${req.resourcePool}`);
  }
  if (!pool) {
    const rp = moRefOf((await retrieveOne(session, owner, ['resourcePool'])).get('resourcePool'));
    if (!rp) throw new NotFoundError(`the compute resource ${owner.value} in datacenter ${dcName} has no resource pool`);
    pool = { ref: rp, name: 'Resources' };
  }
  if (!host) {
    // Naming a host is required in clusters without DRS: pick one that mounts the datastore.
    host = hosts.find((h) => moRefOf(h.props.get('parent'))?.value === owner!.value && mounts(h) && text(h.props.get('runtime.connectionState')) !== 'disconnected');
    if (!host) throw new NotFoundError(`no connected host of resource pool ${pool.name} mounts datastore ${req.datastore}`);
  }

  return {
    datacenter: { ref: dc.obj, name: dcName, path: await datacenterPathOf(session, dc.obj), networkFolder: dcRef('networkFolder') },
    folder,
    pool,
    host: { ref: host.obj, name: text(host.props.get('name')) },
    datastore: { ref: ds.obj, name: req.datastore, freeSpace: freeSpace(ds) },
  };
}
