/**
 * Changed-block tracking's life cycle and disk consolidation, against the lab as vSphere
 * behaves: CBT turned on while the VM has snapshots does not know the data under them, so
 * --enable-cbt waits until the VM has none; CBT turned on in a running VM takes effect at a
 * stun-unstun cycle, which vmbkp runs itself; a snapshot removal that leaves its deltas
 * (consolidation needed) is consolidated, or the backup says what the administrator must do.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import type { VsphereSession } from '../src/vsphere/session.js';
import { createSnapshot, removeSnapshot, snapshotsOf } from '../src/vsphere/vm.js';
import { sha256File, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
const DISK = 2000;

interface VmBackupJson { vms: { vm: string; ok: boolean; generation?: { generation: number; disks: { name: string; mode: string }[] } }[] }
interface PlanJson { vms: { vm: string; cbt?: string; notes?: string[]; disks?: { mode?: string }[] }[] }

describe('changed-block tracking life cycle and disk consolidation, against the lab', () => {
  let lab: Lab;
  let dir: string;
  let repo: string;
  let pw: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;
  let n = 0;

  before(async () => {
    fixture = await startLabRepository(['--vms', '4', '--disks', '1', '--disk-size', String(8 * MiB)]);
    ({ lab, dir, repo, pw, session } = fixture);
  });
  after(() => fixture?.stop());
  beforeEach(() => lab.clearFaults());

  const backupRun = (vm: string, ...args: string[]) => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--json', ...args]);

  async function backup(vm: string, ...args: string[]): Promise<{ modes: string[]; generation: number; stderr: string }> {
    const r = await backupRun(vm, ...args);
    assert.equal(r.code, 0, r.stderr);
    const g = (JSON.parse(r.stdout) as VmBackupJson).vms[0]!.generation!;
    return { modes: g.disks.map((d) => d.mode), generation: g.generation, stderr: r.stderr };
  }

  /** The generation's disk restored to a file, as its SHA-256. */
  async function restoredSha(vm: string, generation: number): Promise<string> {
    const out = path.join(dir, `restore-${vm}-${generation}-${++n}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', vm, '--generation', String(generation), '--disk', String(DISK), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  async function userSnapshot(vm: string, name: string): Promise<void> {
    const ref = await findVm(session, vm);
    await createSnapshot(session, ref.ref, vm, name, { description: 'the administrator\'s own' });
  }

  /** Removes the VM's snapshot `name` through the API; rejects as the task does. */
  async function removeUserSnapshot(vm: string, name: string): Promise<void> {
    const ref = await findVm(session, vm);
    const s = snapshotsOf((await retrieveOne(session, ref.ref, ['snapshot'])).get('snapshot')).find((x) => x.name === name)!;
    await removeSnapshot(session, s.ref, `removing snapshot ${name} of VM ${vm}`);
  }

  /** What `vmbkp run --dry-run` of a recipe backing up `vm` with enableCbt says of it. */
  async function dryRun(vm: string): Promise<PlanJson['vms'][number]> {
    const file = path.join(dir, `recipe-${++n}.yaml`);
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${repo}`, 'targets:', `  vms: ["${vm}"]`, 'policy:', '  enableCbt: true',
    ].join('\n'));
    const r = await vmbkp(['run', file, '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as PlanJson).vms.find((v) => v.vm === vm)!;
  }

  it('--enable-cbt on a VM with snapshots of its own: not enabled, with a warning; enabled once they are gone, and the full backup is exact', async () => {
    const vm = 'lab-vm-1';
    await userSnapshot(vm, 'before-upgrade');

    const plan = await dryRun(vm);
    assert.equal(plan.cbt, 'off');
    assert.ok(plan.notes?.some((x) => /^changed-block tracking would not be enabled: VM lab-vm-1 has snapshots \(before-upgrade\)/.test(x)), JSON.stringify(plan));

    // The backup itself proceeds as it can (whether the transport reads a disk with snapshots under vmbkp's is not this test's concern).
    const first = await backupRun(vm, '--enable-cbt');
    assert.match(first.stderr, /warning: not enabling changed-block tracking: VM lab-vm-1 has snapshots \(before-upgrade\), .*a later run with --enable-cbt enables it once the VM has no snapshots; this backup reads whole disks/);
    assert.equal((await lab.vm(vm)).cbt, false, 'CBT stays off while the VM has snapshots');

    await removeUserSnapshot(vm, 'before-upgrade');
    const second = await backup(vm, '--enable-cbt');
    assert.equal((await lab.vm(vm)).cbt, true);
    assert.deepEqual(second.modes, ['full']);
    // A full backup reads what CBT's "*" lists: turned on while the snapshot existed, that list would miss the data under it.
    assert.equal(await restoredSha(vm, second.generation), await lab.sha256(vm, DISK));
  });

  it('--enable-cbt on a running VM: vmbkp runs the stun-unstun cycle, so the next backup is incr and exact', async () => {
    const vm = 'lab-vm-2';
    assert.equal((await lab.vm(vm)).cbt, false);
    const first = await backup(vm, '--enable-cbt');
    assert.deepEqual(first.modes, ['full']);
    const after1 = await lab.vm(vm);
    assert.equal(after1.cbtPending, false, 'CBT took effect');
    assert.deepEqual(after1.snapshots, [], 'no snapshot left');

    await lab.write(vm, DISK, 3 * MiB + 512, Buffer.alloc(70_000, 0x5a));
    const second = await backup(vm);
    assert.deepEqual(second.modes, ['incr'], second.stderr);
    assert.equal(await restoredSha(vm, second.generation), await lab.sha256(vm, DISK));
  });

  it('deltas an earlier failed removal left are consolidated before the snapshot; the backup is exact', async () => {
    const vm = 'lab-vm-3';
    await userSnapshot(vm, 'patch');
    await lab.write(vm, DISK, MiB, Buffer.alloc(200_000, 0x33)); // held by the snapshot's delta
    await lab.fault('remove-snapshot', { vm, consolidate: 'fail' });
    await assert.rejects(removeUserSnapshot(vm, 'patch'), /consolidating disks/);
    const left = await lab.vm(vm);
    assert.deepEqual(left.snapshots, []);
    assert.equal(left.consolidationNeeded, true);
    assert.equal(left.disks[0]!.chain.length, 2, 'the VM runs on the leftover delta');

    const plan = await dryRun(vm);
    assert.ok(plan.notes?.includes('would first consolidate the disks (a snapshot removal left delta disks that no snapshot uses)'), JSON.stringify(plan));

    const r = await backup(vm);
    assert.match(r.stderr, /warning: VM lab-vm-3 needs disk consolidation \(an earlier snapshot removal left delta disks that no snapshot uses\): consolidating them/);
    const now = await lab.vm(vm);
    assert.equal(now.consolidationNeeded, false);
    assert.equal(now.disks[0]!.chain.length, 1);
    assert.equal(await restoredSha(vm, r.generation), await lab.sha256(vm, DISK));
  });

  it('vmbkp\'s own snapshot removals that leave their deltas are consolidated; the next backup is incr and exact', async () => {
    const vm = 'lab-vm-3';
    // Both removals of the run: the snapshot that activates CBT, then the backup's.
    await lab.fault('remove-snapshot', { vm, consolidate: 'fail', times: 2 });
    const r = await backup(vm, '--enable-cbt');
    assert.match(r.stderr, /warning: VM lab-vm-3 needs disk consolidation \(removing snapshot vmbkp-cbt-[0-9a-f]+ left delta disks that no snapshot uses\): consolidating them/);
    assert.match(r.stderr, /warning: VM lab-vm-3 needs disk consolidation \(removing snapshot vmbkp-[0-9a-f-]{36} left delta disks that no snapshot uses\): consolidating them/);
    const now = await lab.vm(vm);
    assert.deepEqual(now.snapshots, []);
    assert.equal(now.consolidationNeeded, false);
    assert.equal(now.disks[0]!.chain.length, 1);

    await lab.write(vm, DISK, 5 * MiB, Buffer.alloc(4096, 0x77));
    const next = await backup(vm);
    assert.deepEqual(next.modes, ['incr'], next.stderr);
    assert.equal(await restoredSha(vm, next.generation), await lab.sha256(vm, DISK));
  });

  it('consolidation that fails: a clear error naming the VM and what to do, no snapshot taken; the next run consolidates', async () => {
    const vm = 'lab-vm-4';
    await userSnapshot(vm, 'patch');
    await lab.write(vm, DISK, 2 * MiB, Buffer.alloc(100_000, 0x44));
    await lab.fault('remove-snapshot', { vm, consolidate: 'fail' });
    await assert.rejects(removeUserSnapshot(vm, 'patch'));
    await lab.fault('consolidate-disks', { vm });
    await lab.resetStats();

    const r = await backupRun(vm);
    assert.equal(r.code, 1, r.stderr);
    const last = r.stderr.trim().split('\n').pop()!;
    assert.match(last, /^vmbkp: error: VM lab-vm-4 needs disk consolidation \(an earlier snapshot removal left delta disks that no snapshot uses\) and ConsolidateVMDisks_Task failed: .*injected.*; until its disks are consolidated no backup of it can read them: fix the cause \(datastore free space, locked files\), then consolidate them \(vSphere Client: the VM > Snapshots > Consolidate\) or run vmbkp again$/);
    assert.equal((await lab.stats()).maxVmbkpSnapshots, 0, 'no snapshot was taken');
    assert.equal((await lab.vm(vm)).consolidationNeeded, true);

    const again = await backup(vm);
    assert.equal((await lab.vm(vm)).consolidationNeeded, false);
    assert.equal(await restoredSha(vm, again.generation), await lab.sha256(vm, DISK));
  });
});
