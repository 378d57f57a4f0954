/** Finding VMs: by name, by moref ("vm-42"), or every VM under an inventory folder path. */
import { NotFoundError } from '../errors.js';
import { faultOf } from './errors.js';
import { retrieveInContainer, retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { MoRef, child, moRefOf, text } from './xml.js';
import { parseVmSelector } from './vm.js';

export interface VmRef {
  readonly ref: MoRef;
  readonly name: string;
}

/** The VM a --vm value names; a name must be unique in the inventory. */
export async function findVm(session: VsphereSession, selector: string): Promise<VmRef> {
  const sel = parseVmSelector(selector);
  if ('moref' in sel) {
    try {
      const props = await retrieveOne(session, sel.moref, ['name']);
      const name = props.get('name');
      if (name !== undefined) return { ref: sel.moref, name: text(name) };
    } catch (err) {
      if (faultOf(err) !== 'ManagedObjectNotFound') throw err;
    }
    throw new NotFoundError(`VM ${selector} does not exist on ${session.host}`);
  }
  const all = await listVms(session);
  const hits = all.filter((v) => v.name === sel.name);
  if (hits.length === 0) throw new NotFoundError(`VM ${JSON.stringify(sel.name)} does not exist on ${session.host}`);
  if (hits.length > 1) {
    throw new NotFoundError(`VM name ${JSON.stringify(sel.name)} is ambiguous on ${session.host} (${hits.map((h) => h.ref.value).join(', ')}): give its moref`);
  }
  return hits[0]!;
}

export async function listVms(session: VsphereSession, container: MoRef = session.content.rootFolder): Promise<VmRef[]> {
  const objs = await retrieveInContainer(session, container, 'VirtualMachine', ['name']);
  return objs.map((o) => ({ ref: o.obj, name: text(o.props.get('name')) }));
}

/** Every VM under an inventory path such as "DC0/vm/production". */
export async function vmsInFolder(session: VsphereSession, inventoryPath: string): Promise<VmRef[]> {
  const res = await session.call('FindByInventoryPath', session.content.searchIndex, { inventoryPath: inventoryPath.replace(/^\/+/, '') });
  const folder = moRefOf(child(res, 'returnval'));
  if (!folder) throw new NotFoundError(`inventory path ${JSON.stringify(inventoryPath)} does not exist on ${session.host}`);
  return listVms(session, folder);
}
