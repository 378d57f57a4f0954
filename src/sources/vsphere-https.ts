/**
 * The https transport: reads a snapshot's base flat file through the datastore's
 * `/folder` URL with Range requests. Needs nothing from VMware; works when the snapshot
 * disk is a base disk (no older snapshots under it) whose data is one flat extent file,
 * as the descriptor's extent line names it. A disk whose extent is a storage object
 * (vSAN, vVols) has no file to read: that takes the nfc transport.
 */
import { InputError, IoError } from '../errors.js';
import { datacenterPathOf, folderForbidden, folderUrl, parseDatastorePath, readDatastoreRange } from '../vsphere/datastore.js';
import { httpRequest } from '../vsphere/http.js';
import type { VsphereSession } from '../vsphere/session.js';
import { objectScheme, parseExtents } from '../vsphere/vmdk-descriptor.js';
import { type DiskReader, type SnapshotDisk, VsphereDiskSource, diskLabel } from './vsphere.js';

/** Descriptors are a few hundred bytes; more than this is not a text descriptor. */
const DESCRIPTOR_MAX = 64 * 1024;

async function readDescriptor(session: VsphereSession, url: URL, what: string): Promise<string> {
  const res = await httpRequest(session.httpsAgent, {
    method: 'GET', url, headers: { range: `bytes=0-${DESCRIPTOR_MAX - 1}`, ...(session.cookie ? { cookie: session.cookie } : {}) },
  });
  if (res.status === 403) throw folderForbidden(session, 'GET', url);
  if (res.status === 404) throw new InputError(`${what}: its descriptor ${url.pathname} does not exist on the datastore`);
  if (res.status !== 200 && res.status !== 206) throw new IoError(`${what}: reading its descriptor ${url.pathname} answered HTTP ${res.status}`);
  return res.body.toString('utf8');
}

export async function openHttpsDisk(d: SnapshotDisk): Promise<VsphereDiskSource> {
  const what = diskLabel(d);
  if (d.disk.hasParent) {
    throw new InputError(`${what} has older snapshots under vmbkp's: the https transport reads base disks only; remove them or use --transport nfc or vddk`);
  }
  if (!d.disk.backingType.startsWith('VirtualDiskFlat')) {
    throw new InputError(`${what} has a ${d.disk.backingType} backing: the https transport reads flat disks only; use --transport nfc or vddk`);
  }
  await d.session.ensureLoggedIn();
  const file = parseDatastorePath(d.disk.fileName);
  const dcPath = await datacenterPathOf(d.session, d.vm.ref);
  const extents = parseExtents(await readDescriptor(d.session, folderUrl(d.session, dcPath, file), what));
  const [extent, ...more] = extents;
  if (!extent) throw new InputError(`${what}: ${d.disk.fileName} has no extent line (not a text descriptor): use --transport nfc`);
  const scheme = objectScheme(extent.file);
  if (scheme) {
    throw new InputError(`${what} is a ${scheme} object (${extent.file}), not a file the https transport can read: use --transport nfc`);
  }
  if (more.length > 0 || (extent.type !== 'VMFS' && extent.type !== 'FLAT') || extent.offset !== 0) {
    throw new InputError(`${what}: ${d.disk.fileName} has ${extents.length} extent(s) of type ${extent.type}; the https transport reads `
      + 'one flat extent: use --transport nfc');
  }
  const dir = file.path.includes('/') ? file.path.replace(/\/[^/]*$/, '/') : '';
  const flat = { datastore: file.datastore, path: `${dir}${extent.file}` };
  const url = folderUrl(d.session, dcPath, flat);
  const reader: DiskReader = {
    description: `https:[${flat.datastore}] ${flat.path}`,
    read: (offset, length, into) => readDatastoreRange(d.session, url, offset, length, into, { what: `reading ${what}` }),
    close: async () => {},
  };
  return new VsphereDiskSource(d, reader);
}
