/**
 * Long vSphere tasks, against the lab: a snapshot removal (a consolidation) that takes
 * longer than VMBKP_TASK_STALL_TIMEOUT but keeps raising its progress is waited for; one
 * whose progress stops is given up after that time, with one line naming the task, what
 * it did and the VM. The lab's slow-tasks route makes RemoveSnapshot_Task slow.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
const VM = 'lab-vm-1';
/** Only guards against a hang: the tests assert outcomes, never durations. */
const HANG_GUARD = { timeout: 300_000 };

describe('long tasks, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '1', '--disks', '1', '--disk-size', String(4 * MiB)]);
    ({ lab, repo, pw } = fixture);
  });
  after(() => fixture?.stop());

  const backup = (stall: string) => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', VM], { env: { VMBKP_TASK_STALL_TIMEOUT: stall } });

  it('a removal that runs longer than the stall timeout while its progress rises is waited for', HANG_GUARD, async () => {
    // 6 steps of 700 ms: about 4.9 s in all, more than the 2 s allowed, each step well within them.
    await lab.request('POST', `/vms/${VM}/slow-tasks?steps=6&stepMs=700`);
    try {
      const r = await backup('2s');
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /made no progress|did not finish/);
    } finally {
      await lab.request('DELETE', `/vms/${VM}/slow-tasks`);
    }
    assert.deepEqual(await lab.vmbkpSnapshots(VM), [], 'the snapshot was removed');
  });

  it('a removal whose progress stops is given up after the stall timeout, in one line naming the task and the VM', HANG_GUARD, async () => {
    await lab.request('POST', `/vms/${VM}/slow-tasks?steps=4&stepMs=200&stallAt=50`);
    try {
      const r = await backup('1.5');
      assert.equal(r.code, 1, r.stderr);
      const line = r.stderr.split('\n').find((l) => /made no progress/.test(l)) ?? '';
      assert.match(line, /^vmbkp: error: removing snapshot vmbkp-\S+ of VM lab-vm-1: vSphere task task-\d+ \(\S+\) made no progress for 1\.5s \(stuck at 50%\); it may still be running in vCenter; if such tasks pause longer, raise VMBKP_TASK_STALL_TIMEOUT; the next vmbkp run on this VM removes the snapshot \(generation \d+ of set lab-vm-1 was committed and is complete\)$/, r.stderr);
    } finally {
      await lab.request('DELETE', `/vms/${VM}/slow-tasks`); // the stuck task goes on and finishes
    }
    const next = await backup('1h');
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(await lab.vmbkpSnapshots(VM), []);
  });

  it('a stall timeout that is not a duration is a usage error naming the variable, before anything is done', async () => {
    await lab.resetStats();
    const r = await backup('soon');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /VMBKP_TASK_STALL_TIMEOUT="soon" is not a duration/);
    assert.equal((await lab.stats()).maxVmbkpSnapshots, 0, 'refused before any snapshot was taken');
  });
});
