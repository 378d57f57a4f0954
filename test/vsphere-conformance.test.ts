/**
 * The DiskSource and DiskTarget conformance suites against the vSphere transports, on the
 * lab: a snapshot's disk read over https and over vddk (a stand-in nbdkit that serves the
 * lab's flat file, see vddk-standin.ts), and a VM's disk written over https (an upload,
 * sequential) and over vddk. lab-vm-1 is read, lab-vm-2 is written.
 */
import { promises as fs } from 'node:fs';
import { after } from 'node:test';
import type { SnapshotDisk } from '../src/sources/vsphere.js';
import { openHttpsDisk } from '../src/sources/vsphere-https.js';
import { openUploadTarget } from '../src/sources/vsphere-upload.js';
import { openVddkDisk, type VddkOptions } from '../src/sources/vsphere-vddk.js';
import { openVddkTarget } from '../src/sources/vsphere-vddk-target.js';
import type { VmDisk } from '../src/sources/vsphere-target.js';
import { datacenterPathOf } from '../src/vsphere/datastore.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import { VsphereSession } from '../src/vsphere/session.js';
import { createSnapshot, disksOf, enableChangeTracking, removeSnapshot } from '../src/vsphere/vm.js';
import { diskSourceConformance } from './disk-source-conformance.js';
import { diskTargetConformance } from './disk-target-conformance.js';
import { tempDir } from './helpers.js';
import { Lab } from './lab.js';
import { type VddkStandin, installVddkStandin } from './vddk-standin.js';

/** A multiple of 1 KiB (the lab's unit) whose last 4 KiB block is partial. */
const SIZE = 6 * 1024 * 1024 + 3072;
const SOURCE_VM = 'lab-vm-1';
const TARGET_VM = 'lab-vm-2';

interface World {
  readonly lab: Lab;
  readonly session: VsphereSession;
  readonly dir: string;
  readonly read: VddkStandin;
  readonly write: VddkStandin;
  readonly vddk: VddkOptions;
}

let world: Promise<World> | undefined;
const undo: (() => Promise<void>)[] = [];
after(async () => { for (const u of undo.reverse()) await u().catch(() => {}); });

/** One lab for the whole file, started by the first test that needs it. */
function theLab(): Promise<World> {
  world ??= (async () => {
    const { dir, cleanup } = await tempDir();
    undo.push(cleanup);
    const lab = await Lab.start(['--vms', '2', '--disks', '1', '--disk-size', String(SIZE)]);
    undo.push(() => lab.stop());
    // A restore writes a VM that is off: the datastore refuses to replace the disk of a running one.
    await lab.power(TARGET_VM, 'off');
    const session = await VsphereSession.connect({ url: lab.info.url, user: lab.info.user, password: lab.info.password,
      tls: { kind: 'pinned', thumbprint: lab.info.thumbprintSha256 } });
    undo.push(() => session.close());
    const read = await installVddkStandin(dir, 'read', lab, 'read');
    const write = await installVddkStandin(dir, 'write', lab, 'write');
    const vddk: VddkOptions = { server: new URL(lab.info.url).hostname, user: lab.info.user, password: lab.info.password, thumbprint: lab.info.thumbprint };
    return { lab, session, dir, read, write, vddk };
  })();
  return world;
}

/** nbdkit is spawned with this process's environment: point it at the stand-in for the next start. */
function useStandin(s: VddkStandin): void {
  Object.assign(process.env, s.env);
}

let snapshotted: Promise<SnapshotDisk> | undefined;

/** The guest writes the content over the whole disk; CBT on; one snapshot, shared by every source. */
function snapshotDisk(content: Buffer): Promise<SnapshotDisk> {
  snapshotted ??= (async () => {
    const { lab, session } = await theLab();
    const key = (await lab.vm(SOURCE_VM)).disks[0]!.key;
    await lab.write(SOURCE_VM, key, 0, content);
    const vm = await findVm(session, SOURCE_VM);
    await enableChangeTracking(session, vm.ref, vm.name);
    // A running VM picks CBT up at a stun-unstun cycle (a snapshot created and removed).
    await removeSnapshot(session, await createSnapshot(session, vm.ref, vm.name, 'cbt-stun'), 'removing the stun snapshot');
    const snapshot = await createSnapshot(session, vm.ref, vm.name, 'conformance');
    undo.push(() => removeSnapshot(session, snapshot, 'removing the conformance snapshot'));
    const disk = disksOf((await retrieveOne(session, snapshot, ['config'])).get('config'))[0]!;
    return { session, vm, snapshot, disk };
  })();
  return snapshotted;
}

diskSourceConformance('vSphere snapshot disk over https', { size: SIZE, reportsHoles: false, changes: 'extents' }, async (content) => {
  const d = await snapshotDisk(content);
  return { source: await openHttpsDisk(d), cleanup: async () => {} };
});

diskSourceConformance('vSphere snapshot disk over vddk', { size: SIZE, reportsHoles: false, changes: 'extents' }, async (content) => {
  const d = await snapshotDisk(content);
  const { read, vddk } = await theLab();
  useStandin(read);
  return { source: await openVddkDisk(d, vddk), cleanup: async () => {} };
});

/** The target VM's disk as a restore sees it, and a reader of its flat file on the datastore. */
async function vmDisk(): Promise<{ d: VmDisk; readBack: () => Promise<Buffer> }> {
  const { lab, session } = await theLab();
  const vm = await findVm(session, TARGET_VM);
  const disk = disksOf((await retrieveOne(session, vm.ref, ['config'])).get('config'))[0]!;
  const extent = (await lab.vm(TARGET_VM)).disks[0]!.extentPath;
  return { d: { session, vm, disk, datacenterPath: await datacenterPathOf(session, vm.ref) }, readBack: () => fs.readFile(extent) };
}

diskTargetConformance('VM disk over https (an upload)', { size: SIZE }, async () => {
  const { d, readBack } = await vmDisk();
  return { target: await openUploadTarget(d), readBack, cleanup: async () => {} };
});

diskTargetConformance('VM disk over vddk', { size: SIZE }, async () => {
  const { d, readBack } = await vmDisk();
  const { write, vddk } = await theLab();
  useStandin(write);
  return { target: await openVddkTarget(d, vddk), readBack, cleanup: async () => {} };
});
