/**
 * Storage vMotion during a backup, against the lab: while vmbkp reads a VM's snapshot,
 * RelocateVM_Task and MigrateVM_Task of the VM are disabled (source "vmbkp"), so a move is
 * refused with MethodDisabled and the backup reads every disk from one place; the methods
 * are enabled again when the backup succeeds, when it fails, and — after a kill -9 — by
 * the next backup of the VM.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sha256File, startVmbkp, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { methodNames } from '../src/vsphere/disabled-methods.js';
import { faultOf } from '../src/vsphere/errors.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import type { VsphereSession } from '../src/vsphere/session.js';
import { taskOf, waitForTask } from '../src/vsphere/task.js';
import path from 'node:path';

const MiB = 1024 * 1024;
const VM = 'lab-vm-1';
const GUARDED = ['MigrateVM_Task', 'RelocateVM_Task'];

describe('a relocate of the VM during a backup, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let dir: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '1', '--disks', '2', '--disk-size', String(8 * MiB)]);
    ({ lab, repo, pw, dir, session } = fixture);
  });
  after(() => fixture?.stop());

  const backupArgs = () => ['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', VM];

  async function disabled(): Promise<string[]> {
    const vm = await findVm(session, VM);
    return methodNames((await retrieveOne(session, vm.ref, ['disabledMethod'])).get('disabledMethod')).sort();
  }

  /** A vCenter user's storage vMotion through the lab: its answer's status and text. */
  async function relocate(datastore: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${lab.info.control}/vms/${VM}/relocate?datastore=${datastore}`, { method: 'POST' });
    return { status: res.status, text: await res.text() };
  }

  async function generations(): Promise<number[]> {
    const r = await vmbkp(['list', '--repo', repo, '--set', VM, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { sets: { name: string; generations: { generation: number }[] }[] };
    return json.sets.find((x) => x.name === VM)?.generations.map((g) => g.generation) ?? [];
  }

  let restores = 0;
  async function restoredSha(disk: number): Promise<string> {
    const out = path.join(dir, `restored-${disk}-${++restores}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', VM, '--disk', String(disk), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  it('a storage vMotion while the backup reads is refused (MethodDisabled, source vmbkp); afterwards the methods are enabled and the moved VM backs up from its new place', async () => {
    await lab.resetStats();
    await lab.gateFolder(3, 600_000); // holds the backup's first disk read until ungated
    const run = startVmbkp(backupArgs());
    try {
      while ((await lab.stats()).maxDisksReadAtOnce < 1) {
        if (run.child.exitCode !== null) assert.fail(`the backup ended before reading: ${(await run.done).stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await disabled(), GUARDED, 'the backup disabled both migration methods');
      const refused = await relocate('LocalDS_1');
      assert.equal(refused.status, 409, refused.text);
      assert.match(refused.text, /MethodDisabled|disabled by 'vmbkp'/);
      const vm = await findVm(session, VM);
      const migrate = await session.call('MigrateVM_Task', vm.ref, { priority: 'defaultPriority' }).then(() => 'accepted', (err: unknown) => faultOf(err));
      assert.equal(migrate, 'MethodDisabled');
      assert.match((await lab.vm(VM)).disks[0]!.fileName, /^\[LocalDS_0\] /, 'the VM did not move');
    } finally {
      await lab.ungateFolder();
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await disabled(), [], 'enabled again after the backup');
    for (const key of [2000, 2001]) assert.equal(await restoredSha(key), await lab.sha256(VM, key), `disk ${key} read whole from LocalDS_0`);

    const moved = await relocate('LocalDS_1');
    assert.equal(moved.status, 200, moved.text);
    assert.match((await lab.vm(VM)).disks[1]!.fileName, /^\[LocalDS_1\] lab-vm-1\//);
    await lab.write(VM, 2001, 3 * MiB, Buffer.alloc(64 * 1024, 0x3c));
    const again = await vmbkp(backupArgs());
    assert.equal(again.code, 0, again.stderr);
    for (const key of [2000, 2001]) assert.equal(await restoredSha(key), await lab.sha256(VM, key), `disk ${key} as the guest has it, read from LocalDS_1`);
    assert.deepEqual(await disabled(), []);
  });

  it('a failed backup enables the methods again: before its snapshot exists and while it reads', async () => {
    await lab.fault('create-snapshot', { vm: VM });
    const noSnapshot = await vmbkp(backupArgs());
    assert.equal(noSnapshot.code, 1, noSnapshot.stderr);
    assert.deepEqual(await disabled(), []);

    await lab.fault('datastore-read', { vm: VM, after: 0, times: -1 });
    try {
      const readFails = await vmbkp(backupArgs());
      assert.equal(readFails.code, 1, readFails.stderr);
    } finally {
      await lab.clearFaults();
    }
    assert.deepEqual(await disabled(), []);
    assert.deepEqual(await lab.vmbkpSnapshots(VM), []);
  });

  it('when the methods cannot be disabled (no privilege) the backup warns; a storage vMotion during it then fails it, nothing is committed, and the next backup reads the new place', async () => {
    const before = await generations();
    const here = /^\[(\S+)\]/.exec((await lab.vm(VM)).disks[0]!.fileName)![1]!;
    const elsewhere = here === 'LocalDS_0' ? 'LocalDS_1' : 'LocalDS_0';
    await lab.fault('disable-methods', { vm: VM });
    await lab.resetStats();
    await lab.gateFolder(3, 600_000);
    const run = startVmbkp(backupArgs());
    try {
      await run.stderrMatching(/disabling RelocateVM_Task and MigrateVM_Task of VM lab-vm-1 for its backup failed \(.*it needs privilege Global\.DisableMethods on VirtualMachine lab-vm-1 .*\): a storage vMotion or host move during the backup fails it/);
      while ((await lab.stats()).maxDisksReadAtOnce < 1) {
        if (run.child.exitCode !== null) assert.fail(`the backup ended before reading: ${(await run.done).stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const moved = await relocate(elsewhere);
      assert.equal(moved.status, 200, moved.text);
    } finally {
      await lab.ungateFolder();
    }
    const r = await run.done;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(String.raw`VM lab-vm-1 was moved while its backup read it \(disk 200[01]: \[${here}\] lab-vm-1\/\S+ is now \[${elsewhere}\] lab-vm-1\/\S+\): its disks may have been read from two places, so no generation is committed`));
    assert.deepEqual(await generations(), before, 'no generation read from two places was committed');
    assert.deepEqual(await lab.vmbkpSnapshots(VM), []);
    assert.deepEqual(await disabled(), []);

    const next = await vmbkp(backupArgs());
    assert.equal(next.code, 0, next.stderr);
    for (const key of [2000, 2001]) assert.equal(await restoredSha(key), await lab.sha256(VM, key), `disk ${key} read whole from ${elsewhere}`);
  });

  it('after a kill -9 during the backup the methods stay disabled; the next backup enables them again and says so', async () => {
    const run = startVmbkp(backupArgs(), { env: { VMBKP_FAILPOINT: 'vm:snapshot-taken:pause' } });
    try {
      await run.stderrMatching(/failpoint vm:snapshot-taken: paused/);
      assert.deepEqual(await disabled(), GUARDED);
    } finally {
      run.child.kill('SIGKILL');
      await run.done.catch(() => {});
    }
    assert.deepEqual(await disabled(), GUARDED, 'a killed run cannot enable them');
    const next = await vmbkp(backupArgs());
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /enabled MigrateVM_Task and RelocateVM_Task of VM lab-vm-1 again: an earlier vmbkp run that did not finish had disabled them|enabled RelocateVM_Task and MigrateVM_Task of VM lab-vm-1 again: an earlier vmbkp run that did not finish had disabled them/);
    assert.deepEqual(await disabled(), []);
    assert.equal((await relocate('LocalDS_0')).status, 200, 'the VM can be moved again');
  });
});
