/**
 * The https transport: reads a snapshot's base flat file through the datastore's
 * `/folder` URL with Range requests. Needs nothing from VMware; works when the snapshot
 * disk is a base disk (no older snapshots under it).
 */
import { InputError } from '../errors.js';
import { datacenterPathOf, flatFileOf, folderUrl, parseDatastorePath, readDatastoreRange } from '../vsphere/datastore.js';
import { type DiskReader, type SnapshotDisk, VsphereDiskSource, diskLabel } from './vsphere.js';

export async function openHttpsDisk(d: SnapshotDisk): Promise<VsphereDiskSource> {
  const what = diskLabel(d);
  if (d.disk.hasParent) {
    throw new InputError(`${what} has older snapshots under vmbkp's: the https transport reads base disks only; remove them or use --transport vddk`);
  }
  if (!d.disk.backingType.startsWith('VirtualDiskFlat')) {
    throw new InputError(`${what} has a ${d.disk.backingType} backing: the https transport reads flat disks only; use --transport vddk`);
  }
  const file = parseDatastorePath(d.disk.fileName);
  const flat = { datastore: file.datastore, path: flatFileOf(file.path) };
  const url = folderUrl(d.session, await datacenterPathOf(d.session, d.vm.ref), flat);
  const reader: DiskReader = {
    description: `https:[${flat.datastore}] ${flat.path}`,
    read: (offset, length, into) => readDatastoreRange(d.session, url, offset, length, into, { what: `reading ${what}` }),
    close: async () => {},
  };
  return new VsphereDiskSource(d, reader);
}
