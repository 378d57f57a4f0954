/**
 * The PropertyCollector as vCenter answers, against the lab: results split over pages
 * (ContinueRetrievePropertiesEx with the token), and properties left out in `missingSet`
 * — denied (NoPermission) or failed (SystemError). A missing VM snapshot list or
 * snapshot configuration fails the VM: no generation, empty or partial, is committed,
 * and no snapshot is left behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vmbkp, vmbkpJson } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;

describe('property collector pages and missingSet, against the lab', () => {
  let lab: Lab;
  let fixture: LabRepository | undefined;
  let repo: string;
  let pw: string;

  before(async () => {
    // The lab's default page is one object: every listing of several objects pages.
    fixture = await startLabRepository(['--vms', '3', '--disks', '2', '--disk-size', String(4 * MiB)]);
    ({ lab, repo, pw } = fixture);
  });
  after(() => fixture?.stop());

  const backup = (vm: string) => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm]);
  const generations = async (set: string) =>
    ((await vmbkpJson<{ sets: { name: string; generations: unknown[] }[] }>(['list', '--repo', repo])).sets.find((x) => x.name === set)?.generations.length ?? 0);
  const pc = async () => (await (await lab.request('GET', '/property-collector')).json()) as { page: number; continueCalls: number };

  it('a VM on the last page of the answer is found and backed up whole', async () => {
    assert.equal((await pc()).page, 1);
    const before = (await pc()).continueCalls;
    const r = await backup('lab-vm-3');
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await pc()).continueCalls > before, 'the answers came in pages');
    const sets = await vmbkpJson<{ sets: { name: string; generations: { disks: unknown[] }[] }[] }>(['list', '--repo', repo]);
    assert.equal(sets.sets.find((s) => s.name === 'lab-vm-3')?.generations[0]?.disks.length, 2, 'both disks are in the generation');
  });

  it("a VM's snapshot list denied (missingSet NoPermission): exit 7 naming System.Read and the VM, nothing committed", async () => {
    await lab.fault('missing-property', { vm: 'lab-vm-1', path: 'snapshot' });
    const r = await backup('lab-vm-1');
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /vmbkp: error: user vmbkp may not read property snapshot of VirtualMachine vm-\d+ on \S+: it needs privilege System\.Read on VirtualMachine lab-vm-1 \(vm-\d+\)/);
    assert.equal(await generations('lab-vm-1'), 0);
    assert.deepEqual((await lab.vm('lab-vm-1')).snapshots, []);
  });

  it("the snapshot's configuration left out (missingSet SystemError): the VM fails, no generation, the snapshot removed", async () => {
    await lab.fault('missing-property', { vm: 'lab-vm-2', object: 'snapshot', path: 'config', fault: 'SystemError' });
    const r = await backup('lab-vm-2');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /could not read property config of VirtualMachineSnapshot snapshot-\d+ on \S+: vCenter left it out \(missingSet: SystemError: .*lab: injected fault in RetrievePropertiesEx\)/);
    assert.match(r.stderr, /the configuration of snapshot vmbkp-\S+ of VM lab-vm-2; no generation is committed/);
    assert.equal(await generations('lab-vm-2'), 0);
    assert.deepEqual((await lab.vm('lab-vm-2')).snapshots, []);
    assert.deepEqual(await lab.request('GET', '/faults').then((res) => res.json()), [], 'the fault fired');
  });
});
