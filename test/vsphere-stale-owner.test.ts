/**
 * Owners whose pid was reused, against the vSphere lab: a vmbkp snapshot or an unfinished
 * restore whose description names a pid that runs — this test process — but with another
 * start time was left by a process that is gone, and is removed; one naming this test
 * process as it is (or by its pid alone, as older versions wrote) is refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { oneLine, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { type ProcessIdentity, thisProcess } from '../src/process-identity.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import { RESTORE_MARKER_KEY, restoreMarkerValue } from '../src/vsphere/restore-marker.js';
import { VsphereSession } from '../src/vsphere/session.js';
import { backupSnapshotDescription } from '../src/vsphere/snapshot-owner.js';
import { taskOf, waitForTask } from '../src/vsphere/task.js';
import { createSnapshot, removeSnapshot, snapshotsOf } from '../src/vsphere/vm.js';
import { TypedText } from '../src/vsphere/xml.js';

const MiB = 1024 * 1024;
const SRC = 'lab-vm-1';
const TARGET = 'lab-vm-2';

/** This test process as a dead owner whose pid it now has would look: its pid, another start time. */
function reusedPid(): ProcessIdentity {
  const me = thisProcess();
  assert.ok(me.start, 'this machine has /proc');
  return { ...me, start: String(BigInt(me.start) + 1n) };
}

describe('owners with a reused pid, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '2', '--disks', '1', '--disk-size', String(8 * MiB)]);
    ({ lab, repo, pw, session } = fixture);
  });
  after(() => fixture?.stop());

  async function snapshot(name: string, description: string): Promise<void> {
    const vm = await findVm(session, SRC);
    await createSnapshot(session, vm.ref, SRC, name, { description });
  }

  async function removeSnapshots(): Promise<void> {
    const vm = await findVm(session, SRC);
    for (const s of snapshotsOf((await retrieveOne(session, vm.ref, ['snapshot'])).get('snapshot')).reverse()) {
      await removeSnapshot(session, s.ref, `removing ${s.name}`);
    }
  }

  const backup = () => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', SRC]);

  it('a vmbkp snapshot of a live pid with another start time is an orphan: removed, and the backup runs', async () => {
    await snapshot('vmbkp-reused', backupSnapshotDescription(reusedPid()));
    const r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removing snapshot vmbkp-reused of VM lab-vm-1, left by an earlier run/);
    assert.deepEqual(await lab.vmbkpSnapshots(SRC), []);
  });

  it('a vmbkp snapshot of a process that runs (with its start time, or by pid alone in the old form) is refused', async () => {
    try {
      for (const description of [
        backupSnapshotDescription(thisProcess()),
        `vmbkp backup; host=${thisProcess().host} pid=${process.pid} started=2026-11-22T03:16:31.000Z`,
      ]) {
        await snapshot('vmbkp-live', description);
        const r = await backup();
        assert.equal(r.code, 2, r.stderr);
        assert.match(oneLine(r.stderr), new RegExp(`VM lab-vm-1 is being backed up by vmbkp process ${process.pid} on this host \\(snapshot vmbkp-live\\)`));
        assert.deepEqual(await lab.vmbkpSnapshots(SRC), ['vmbkp-live']);
        await removeSnapshots();
      }
    } finally {
      await removeSnapshots();
    }
  });

  async function markUnfinished(vmName: string, owner: ProcessIdentity): Promise<string> {
    const vm = await findVm(session, vmName);
    const value = restoreMarkerValue({ ...owner, started: '2026-11-22T03:16:31.000Z' });
    const res = await session.call('ReconfigVM_Task', vm.ref, { spec: { extraConfig: [{ key: RESTORE_MARKER_KEY, value: new TypedText('xsd:string', value) }] } });
    await waitForTask(session, taskOf(res), { what: `marking ${vmName}` });
    return vm.ref.value;
  }

  const restore = () => vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', SRC, '--name', TARGET]);

  it('an unfinished restore of a live pid with another start time is removed and the name restored again; one that runs is refused', async () => {
    await lab.power(TARGET, 'off'); // an unfinished restore was never powered on
    const marked = await markUnfinished(TARGET, reusedPid());
    const r = await restore();
    assert.equal(r.code, 0, r.stderr);
    assert.match(oneLine(r.stderr), new RegExp(`vmbkp: warning: removing VM ${TARGET} \\(${marked}\\): an unfinished restore by vmbkp process ${process.pid} of this host`));
    const named = (await lab.vms()).filter((v) => v.name === TARGET);
    assert.equal(named.length, 1);
    assert.notEqual(named[0]!.moref, marked, 'the marked VM is gone, a new one has its name');

    // The same marker naming this test process as it is: that restore still runs.
    const live = await markUnfinished(TARGET, thisProcess());
    const refused = await restore();
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(oneLine(refused.stderr), new RegExp(`VM ${TARGET} \\(${live}\\) is an unfinished restore by vmbkp process ${process.pid} on host \\S+, started \\S+, which still runs`));
    assert.ok((await lab.vms()).some((v) => v.moref === live), 'the VM of a running restore is kept');
  });
});
