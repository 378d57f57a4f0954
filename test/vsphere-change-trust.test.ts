/**
 * When vSphere's changed-block tracking since the previous generation cannot be trusted,
 * against the lab (which models the worst case of each): a disk overwritten by
 * `restore --overwrite` (the upload is not tracked), a VM reverted to a snapshot (the
 * sequence goes back and a later change id is still accepted, answering for another
 * history), and another VM under the same name (another instance UUID). Each backup that
 * follows reads the disk whole (diff), never incr, and every generation restores to the
 * bytes the lab had at its point.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256File, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { installVddkStandin } from './vddk-standin.js';
import { findVm } from '../src/vsphere/inventory.js';
import { taskOf, waitForTask } from '../src/vsphere/task.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import { createSnapshot, removeSnapshot } from '../src/vsphere/vm.js';
import type { VsphereSession } from '../src/vsphere/session.js';
import { type MoRef, children, textAt } from '../src/vsphere/xml.js';

const MiB = 1024 * 1024;
const KEY = 2000;

interface BackupJson {
  vms: { vm: string; ok: boolean; error?: string; generation?: { set: string; generation: number; disks: { name: string; mode: string; note?: string }[] } }[];
}

describe('change tracking that cannot be trusted, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let dir: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;
  let vddk: NodeJS.ProcessEnv;

  before(async () => {
    fixture = await startLabRepository(['--vms', '3', '--disks', '1', '--disk-size', String(8 * MiB)]);
    ({ lab, repo, pw, dir, session } = fixture);
    vddk = (await installVddkStandin(dir, 'vddk', lab, 'read')).env;
  });
  after(() => fixture?.stop());

  /** Backs `vm` up; returns its disk's mode and note, and the stderr. */
  async function backup(vm: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<{ generation: number; mode: string; note: string; stderr: string }> {
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--json', ...extra], env ? { env } : {});
    assert.equal(r.code, 0, r.stderr);
    const g = (JSON.parse(r.stdout) as BackupJson).vms[0]!.generation!;
    const d = g.disks.find((x) => x.name === String(KEY))!;
    return { generation: g.generation, mode: d.mode, note: d.note ?? '', stderr: r.stderr };
  }

  async function restoredSha(set: string, generation: number): Promise<string> {
    const out = path.join(dir, `${set}-${generation}-${Date.now()}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', String(KEY), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  async function write(vm: string, offset: number, length = 64 * 1024): Promise<void> {
    await lab.write(vm, KEY, offset, randomBytes(length));
  }

  /** What `run --dry-run` predicts for the disk of `vm`. */
  async function dryRun(vm: string): Promise<{ mode?: string; why?: string }> {
    const file = path.join(dir, `dry-run-${vm}-${Date.now()}.yaml`);
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`,
      `  passwordFile: ${pw}`, `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${repo}`,
      'targets:', `  vms: ["${vm}"]`,
    ].join('\n'));
    const r = await vmbkp(['run', file, '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { vms: { disks: { key: number; mode?: string; why?: string }[] }[] };
    return plan.vms[0]!.disks.find((d) => d.key === KEY)!;
  }

  const changeSession = async (vm: string) => (await lab.vm(vm)).disks[0]!.changeId.split('/')[0];

  it('restore --overwrite, then guest writes: the next backup reads the disk whole, and every generation restores exactly', async () => {
    const vm = 'lab-vm-1';
    const shas: string[] = [];
    const g1 = await backup(vm, ['--enable-cbt']);
    assert.equal(g1.mode, 'full');
    shas.push(await lab.sha256(vm, KEY));
    await write(vm, 1 * MiB, 300 * 1024);
    const g2 = await backup(vm);
    assert.equal(g2.mode, 'incr', g2.note);
    shas.push(await lab.sha256(vm, KEY));

    // Generation 1 over the VM: its flat file is uploaded, which the lab's CBT (like ESXi's, at worst) does not see.
    await lab.power(vm, 'off');
    const sessionBefore = await changeSession(vm);
    const r = await vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', vm, '--generation', '1', '--name', vm, '--overwrite', '--power-on']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await lab.sha256(vm, KEY), shas[0]);
    assert.notEqual(await changeSession(vm), sessionBefore, 'the overwrite started a new change-tracking session');

    // A little guest write: an incr from generation 2's change id would be generation 2 plus it.
    await write(vm, 5 * MiB);
    const g3 = await backup(vm);
    assert.notEqual(g3.mode, 'incr');
    assert.equal(g3.mode, 'diff');
    assert.match(g3.note, /the VM has no backup mark vmbkp\.generation\.[0-9a-f]{8} \(its disks were overwritten by a restore/);
    shas.push(await lab.sha256(vm, KEY));
    for (let g = 1; g <= 3; g++) assert.equal(await restoredSha(vm, g), shas[g - 1], `generation ${g}`);

    // Trust comes back: the next backup is an incr again.
    await write(vm, 6 * MiB);
    const g4 = await backup(vm);
    assert.equal(g4.mode, 'incr', g4.note);
    assert.equal(await restoredSha(vm, 4), await lab.sha256(vm, KEY));
  });

  async function revert(snapshot: MoRef, what: string): Promise<void> {
    const res = await session.call('RevertToSnapshot_Task', snapshot, {});
    await waitForTask(session, taskOf(res), { what });
  }

  it('a revert to a snapshot between backups: the next backup is a diff, and restores exactly', async () => {
    const vm = 'lab-vm-2';
    // A backup under the user's snapshot reads a delta: the vddk transport (https reads base disks only).
    const backupVddk = (name: string, extra: string[] = []) => backup(name, ['--transport', 'vddk', ...extra], vddk);
    const ref = (await findVm(session, vm)).ref;
    const g1 = await backupVddk(vm, ['--enable-cbt']);
    assert.equal(g1.mode, 'full');
    const sha1 = await lab.sha256(vm, KEY);

    await write(vm, 1 * MiB);
    const snap = await createSnapshot(session, ref, vm, 'before-upgrade', { memory: true });
    const atSnap = await lab.sha256(vm, KEY, snap.value);
    await write(vm, 2 * MiB, 128 * 1024);
    const g2 = await backupVddk(vm);
    assert.equal(g2.mode, 'incr', g2.note);
    const sha2 = await lab.sha256(vm, KEY);

    assert.equal((await dryRun(vm)).mode, 'incr');
    await revert(snap, `reverting ${vm} to before-upgrade`);
    const reverted = await lab.vm(vm);
    assert.equal(reverted.powerState, 'poweredOn', 'a snapshot with memory reverts to running');
    assert.equal(reverted.currentSnapshot, snap.value);
    assert.equal(await lab.sha256(vm, KEY), atSnap, 'the disk is as the snapshot froze it');

    // More writes than generation 2 saw after the snapshot: the sequence passes generation 2's
    // change id again, which vSphere then accepts and answers for the wrong history.
    for (const mib of [3, 4, 5, 6]) await write(vm, mib * MiB);
    const predicted = await dryRun(vm);
    assert.equal(predicted.mode, 'diff', 'the dry run sees the revert too');
    assert.match(predicted.why ?? '', /the VM was reverted to a snapshot/);
    const g3 = await backupVddk(vm);
    assert.equal(g3.mode, 'diff');
    assert.match(g3.note, /the VM was reverted to a snapshot, or its configuration replaced, since generation 2/);
    const sha3 = await lab.sha256(vm, KEY);
    assert.deepEqual([await restoredSha(vm, 1), await restoredSha(vm, 2), await restoredSha(vm, 3)], [sha1, sha2, sha3]);

    // The backup's own snapshot came and went on the new branch; the user's snapshot stays.
    assert.deepEqual((await lab.vm(vm)).snapshots.map((s) => s.name), ['before-upgrade']);
    await removeSnapshot(session, snap, 'removing before-upgrade');
    await write(vm, 7 * MiB);
    const g4 = await backupVddk(vm);
    assert.equal(g4.mode, 'incr', g4.note);
    assert.equal(await restoredSha(vm, 4), await lab.sha256(vm, KEY));
  });

  it('the lab branches the snapshot tree on a revert; a revert to a point after the last backup keeps incr, exactly', async () => {
    // lab-vm-1, backed up by the first test (CBT on, its mark current).
    const vm = 'lab-vm-1';
    const ref = (await findVm(session, vm)).ref;
    const backupVddk = (extra: string[] = []) => backup(vm, ['--transport', 'vddk', ...extra], vddk);
    // A run that fails after leaving its mark (every read of the disk breaks off) does not
    // cost the next run its incr: the mark names the generation it followed.
    await write(vm, 6 * MiB + 4096);
    await lab.fault('datastore-read', { vm, times: -1 });
    const failed = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm]);
    await lab.clearFaults();
    assert.equal(failed.code, 1, failed.stderr);
    const before = await backupVddk();
    assert.equal(before.mode, 'incr', before.note);

    await write(vm, 1 * MiB);
    const s1 = await createSnapshot(session, ref, vm, 's1', { memory: true });
    const sha1 = await lab.sha256(vm, KEY, s1.value);
    await write(vm, 2 * MiB);
    const s2 = await createSnapshot(session, ref, vm, 's2', { memory: true });
    const sha2 = await lab.sha256(vm, KEY, s2.value);
    await write(vm, 3 * MiB);

    await revert(s1, `reverting ${vm} to s1`);
    assert.equal(await lab.sha256(vm, KEY), sha1);
    await write(vm, 4 * MiB, 200 * 1024);
    const s3 = await createSnapshot(session, ref, vm, 's3', { memory: true });
    const sha3 = await lab.sha256(vm, KEY, s3.value);
    await write(vm, 5 * MiB);
    const now = await lab.sha256(vm, KEY);

    // s2 and s3 are both children of s1, as vCenter shows the tree.
    const info = await lab.vm(vm);
    assert.deepEqual(info.snapshots.map((s) => [s.name, s.parent]), [['s1', ''], ['s2', s1.value], ['s3', s1.value]]);
    assert.equal(info.currentSnapshot, s3.value);
    const tree = (await retrieveOne(session, ref, ['snapshot'])).get('snapshot');
    const roots = children(tree, 'rootSnapshotList');
    assert.equal(roots.length, 1);
    assert.deepEqual(children(roots[0], 'childSnapshotList').map((c) => textAt(c, 'name')), ['s2', 's3']);

    // s1 was taken after the last backup: the changes since it are still the truth (the
    // discarded branch's writes are forgotten with it), so the backup stays an incr.
    const g = await backupVddk();
    assert.equal(g.mode, 'incr', g.note);
    assert.equal(await restoredSha(vm, g.generation), now);

    // Removing s1, a branch point, keeps every view; so does removing the rest, down to the base disk.
    await removeSnapshot(session, s1, 'removing s1');
    assert.deepEqual([await lab.sha256(vm, KEY, s2.value), await lab.sha256(vm, KEY, s3.value), await lab.sha256(vm, KEY)], [sha2, sha3, now]);
    await removeSnapshot(session, s2, 'removing s2');
    assert.deepEqual([await lab.sha256(vm, KEY, s3.value), await lab.sha256(vm, KEY)], [sha3, now]);
    await removeSnapshot(session, s3, 'removing s3');
    const after = await lab.vm(vm);
    assert.equal(await lab.sha256(vm, KEY), now);
    assert.deepEqual(after.disks[0]!.chain, [`${vm}.vmdk`]);
    assert.deepEqual((await fs.readdir(after.dir)).filter((f) => /-\d{6}/.test(f)), [], 'no delta file is left');

    const none = await session.call('RevertToCurrentSnapshot_Task', ref, {}).then((res) => waitForTask(session, taskOf(res), { what: 'reverting without snapshots' })).then(() => undefined, (err: unknown) => err);
    assert.match(String(none), /NotFound|has no current snapshot/);
  });

  it('the same name, another instance UUID: diff, with a warning naming both UUIDs', async () => {
    const vm = 'lab-vm-3';
    const g1 = await backup(vm, ['--enable-cbt']);
    assert.equal(g1.mode, 'full');
    const first = (await lab.vm(vm)).instanceUuid;

    // The VM's files registered anew (a copy, another vCenter): its advanced settings, the
    // backup mark among them, and its change tracking come along; its instance UUID does not.
    await write(vm, 1 * MiB);
    await lab.request('POST', `/vms/${vm}/instance-uuid`);
    const second = (await lab.vm(vm)).instanceUuid;
    assert.notEqual(second, first);
    const g2 = await backup(vm);
    assert.equal(g2.mode, 'diff');
    assert.match(g2.stderr, new RegExp(`^vmbkp: warning: VM ${vm} is not the VM generation 1 of set ${vm} was made of: its instance UUID is ${second}, the generation's is ${first} \\(recreated, cloned, or another vCenter's VM of that name\\); its disks are read whole$`, 'm'));
    assert.match(g2.note, new RegExp(`the VM's instance UUID is ${second}, generation 1's was ${first}`));
    assert.equal(await restoredSha(vm, 2), await lab.sha256(vm, KEY));

    // Deleted and made again under its name (restored from the backup, with a new identity).
    await lab.power(vm, 'off');
    const res = await session.call('Destroy_Task', (await findVm(session, vm)).ref, {});
    await waitForTask(session, taskOf(res), { what: `destroying ${vm}` });
    const r = await vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', vm, '--name', vm, '--power-on']);
    assert.equal(r.code, 0, r.stderr);
    const third = (await lab.vm(vm)).instanceUuid;
    assert.ok(third !== first && third !== second, 'a new VM has a new instance UUID');
    await write(vm, 2 * MiB);
    const g3 = await backup(vm, ['--enable-cbt']);
    assert.equal(g3.mode, 'diff');
    assert.match(g3.stderr, new RegExp(`^vmbkp: warning: VM ${vm} is not the VM generation 2 of set ${vm} was made of: its instance UUID is ${third}, the generation's is ${second} `, 'm'));
    assert.equal(await restoredSha(vm, 3), await lab.sha256(vm, KEY));
  });
});
