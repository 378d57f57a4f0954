/**
 * A VM backup never fails because changed-block tracking cannot answer: CBT off, a reset
 * change id, or a resized disk make that disk fall back to diff or full with a warning.
 * Faults of vSphere (snapshot creation, datastore reads) fail cleanly and leave no snapshot.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VsphereSession } from '../src/vsphere/session.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import { taskOf, waitForTask } from '../src/vsphere/task.js';
import { disksOf } from '../src/vsphere/vm.js';
import { Typed } from '../src/vsphere/xml.js';
import { listFiles, oneLine, treeDigest, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;

interface VmBackupJson { vms: { vm: string; ok: boolean; generation?: { generation: number; disks: { name: string; mode: string; note?: string }[] } }[] }

describe('VM backup fallbacks and faults', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '4', '--disks', '2', '--disk-size', String(32 * MiB)]);
    ({ lab, repo, pw, session } = fixture);
  });
  after(() => fixture?.stop());

  async function backup(vm: string, ...args: string[]): Promise<{ json: VmBackupJson; stderr: string }> {
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return { json: JSON.parse(r.stdout) as VmBackupJson, stderr: r.stderr };
  }
  const modes = (j: VmBackupJson) => j.vms[0]!.generation!.disks.map((d) => d.mode);

  async function reconfigure(vmName: string, spec: Record<string, unknown>): Promise<void> {
    const vm = await findVm(session, vmName);
    await waitForTask(session, taskOf(await session.call('ReconfigVM_Task', vm.ref, { spec: spec as never })), { what: `reconfiguring ${vmName}` });
  }

  it('CBT off: diff with a warning; --enable-cbt then gives incr', async () => {
    const vm = 'lab-vm-1';
    assert.deepEqual(modes((await backup(vm)).json), ['full', 'full']);
    const second = await backup(vm, '--mode', 'incr');
    assert.deepEqual(modes(second.json), ['diff', 'diff']);
    assert.match(second.stderr, /changed-block tracking is off on VM lab-vm-1/);
    assert.match(second.stderr, /diff backup, incr not possible/);
    await backup(vm, '--enable-cbt');
    await lab.write(vm, 2000, 5 * MiB, Buffer.alloc(4096, 7));
    assert.deepEqual(modes((await backup(vm)).json), ['incr', 'incr']);
  });

  it('a reset change id (CBT turned off and on) falls back to diff with a warning', async () => {
    const vm = 'lab-vm-2';
    await backup(vm, '--enable-cbt');
    await reconfigure(vm, { changeTrackingEnabled: false });
    await reconfigure(vm, { changeTrackingEnabled: true });
    await lab.write(vm, 2001, MiB, Buffer.alloc(8192, 9));
    const r = await backup(vm, '--mode', 'incr');
    assert.deepEqual(modes(r.json), ['diff', 'diff']);
    assert.match(r.stderr, /cannot list the changes of disk 2000 of VM lab-vm-2/);
  });

  it('a resized disk falls back to full for that disk only', async () => {
    const vm = 'lab-vm-3';
    await backup(vm, '--enable-cbt');
    const ref = await findVm(session, vm);
    const disk = disksOf((await retrieveOne(session, ref.ref, ['config'])).get('config')).find((d) => d.key === 2001)!;
    await reconfigure(vm, {
      deviceChange: [{
        operation: 'edit',
        device: new Typed('VirtualDisk', {
          key: disk.key,
          backing: new Typed('VirtualDiskFlatVer2BackingInfo', { fileName: disk.fileName, diskMode: disk.diskMode }),
          controllerKey: disk.controllerKey,
          unitNumber: disk.unitNumber,
          capacityInKB: (disk.capacity + 16 * MiB) / 1024,
        }),
      }],
    });
    const r = await backup(vm);
    const byName = new Map(r.json.vms[0]!.generation!.disks.map((d) => [d.name, d]));
    assert.equal(byName.get('2000')!.mode, 'incr');
    assert.equal(byName.get('2001')!.mode, 'full');
    assert.match(r.stderr, /disk 2001: full backup, diff not possible: the disk was \d+ bytes/);
  });

  it('snapshot creation fails: a clear error, no generation, no snapshot left', async () => {
    const vm = 'lab-vm-4';
    const before = await treeDigest(repo);
    // Twice: the first is the snapshot that activates the CBT just turned on (its failure only warns), the second the backup's.
    await lab.fault('create-snapshot', { vm, times: 2 });
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--enable-cbt']);
    assert.equal(r.code, 1);
    const [warning, error, ...rest] = r.stderr.trim().split('\n');
    assert.deepEqual(rest, [], r.stderr);
    assert.match(warning!, /^vmbkp: warning: changed-block tracking on VM lab-vm-4 could not be activated \(creating snapshot vmbkp-cbt-\S+ of VM lab-vm-4 failed: .*injected.*\): this backup reads whole disks$/);
    assert.match(error!, /^vmbkp: error: creating snapshot vmbkp-[0-9a-f-]{36} of VM lab-vm-4 failed: .*injected/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
    assert.deepEqual(await listFiles(path.join(repo, 'generations')).then((f) => f.filter((x) => x.includes(vm))), []);
    assert.deepEqual(await treeDigest(repo), before, 'the repository is unchanged');
  });

  it('a datastore read that drops once is retried; one that keeps dropping fails cleanly', async () => {
    const vm = 'lab-vm-4';
    await lab.fault('datastore-read', { vm, after: 100_000, times: 1 });
    const ok = await backup(vm, '--enable-cbt');
    assert.deepEqual(modes(ok.json), ['full', 'full']);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);

    await lab.fault('datastore-read', { vm, after: 100_000, times: -1 });
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--mode', 'full', '--enable-cbt']);
    await lab.clearFaults();
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /^vmbkp: error: reading disk 200[01] of VM lab-vm-4 at offset \d+ failed after 4 attempts/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
    const list = await vmbkp(['list', '--repo', repo, '--set', vm, '--json']);
    const sets = (JSON.parse(list.stdout) as { sets: { name: string; generations: unknown[] }[] }).sets;
    assert.equal(sets.find((s) => s.name === vm)?.generations.length, 1, 'only the successful generation exists');
    const verify = await vmbkp(['verify', '--repo', repo]);
    assert.equal(verify.code, 0, verify.stderr);
  });
});
