/**
 * Snapshots of other hosts' runs, against the vSphere lab (issue 12 case 5). Two vmbkp
 * processes pose as two hosts (VMBKP_TEST_HOST): this host cannot see the other's pid, so
 * it judges the other's `vmbkp-` snapshot by its last sign of life — the heartbeat the
 * running backup writes into the description, or its creation. A fresh one is refused,
 * never removed; a stale one is an orphan and removed. And a snapshot removed under a
 * running backup (by hand, or an older vmbkp elsewhere) makes that backup fail: no
 * generation is committed — also when it goes while the disk is being read, where the lab
 * (as vSphere) consolidates into the very file read and the reads still succeed.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startVmbkp, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import type { VsphereSession } from '../src/vsphere/session.js';
import { backupSnapshotDescription } from '../src/vsphere/snapshot-owner.js';
import { createSnapshot, removeSnapshot, snapshotsOf } from '../src/vsphere/vm.js';

const MiB = 1024 * 1024;
const VM1 = 'lab-vm-1';
const VM2 = 'lab-vm-2';
const HOUR = 3600_000;

describe('snapshots of other hosts\' runs, against the lab', () => {
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

  const backupArgs = (vm: string) => ['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm];
  const asHost = (host: string, env: NodeJS.ProcessEnv = {}) => ({ env: { VMBKP_TEST_HOST: host, ...env } });

  async function snapshotsNow(vm: string) {
    const ref = await findVm(session, vm);
    return snapshotsOf((await retrieveOne(session, ref.ref, ['snapshot'])).get('snapshot'));
  }

  async function generations(set: string): Promise<number[]> {
    const r = await vmbkp(['list', '--repo', repo, '--set', set, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { sets: { name: string; generations: { generation: number }[] }[] };
    return json.sets.find((s) => s.name === set)?.generations.map((g) => g.generation) ?? [];
  }

  /** The snapshots a dry run says the backup would remove first (as host B). */
  async function dryRunOrphans(vm: string): Promise<string[]> {
    const file = path.join(fixture!.dir, `dry-run-${vm}.yaml`);
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${repo}`, 'targets:', `  vms: [${vm}]`,
    ].join('\n'));
    const r = await vmbkp(['run', file, '--dry-run', '--json'], asHost('host-b'));
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { vms: { orphanSnapshots: string[] }[] }).vms[0]!.orphanSnapshots;
  }

  async function removeAll(vm: string): Promise<void> {
    for (const s of (await snapshotsNow(vm)).reverse()) await removeSnapshot(session, s.ref, `removing ${s.name}`);
  }

  it('two hosts back up different VMs at once; neither removes the other\'s snapshot, and a VM the other is backing up is refused', async () => {
    const before1 = await generations(VM1);
    // Host A's backup of VM1 holds its snapshot (paused right after taking it), refreshing it every second.
    const a = startVmbkp(backupArgs(VM1), asHost('host-a', { VMBKP_FAILPOINT: 'vm:snapshot-taken:pause', VMBKP_SNAPSHOT_HEARTBEAT_SECONDS: '1' }));
    try {
      await a.stderrMatching(/failpoint vm:snapshot-taken: paused/);
      const [snapA] = await snapshotsNow(VM1);
      assert.ok(snapA && snapA.name.startsWith('vmbkp-'), 'host A took its snapshot');
      assert.match(snapA.description ?? '', /host=host-a /);

      // Host B backs up VM2 meanwhile: it does not touch VM1's snapshot.
      const b = await vmbkp(backupArgs(VM2), asHost('host-b'));
      assert.equal(b.code, 0, b.stderr);
      assert.deepEqual(await lab.vmbkpSnapshots(VM1), [snapA.name]);
      assert.deepEqual(await lab.vmbkpSnapshots(VM2), []);

      // Host B asked for VM1 too: refused, naming host A's process, its snapshot and its age; nothing removed.
      const refused = await vmbkp(backupArgs(VM1), asHost('host-b'));
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, new RegExp(`VM ${VM1} is being backed up by vmbkp process ${a.pid} on host host-a \\(snapshot ${snapA.name}, last sign of life \\d+ (s|min) ago; taken for an orphan after 30 min without one\\)`));
      assert.deepEqual(await lab.vmbkpSnapshots(VM1), [snapA.name]);

      // The paused backup keeps its snapshot alive: the description gains a heartbeat (vCenter's time), same name.
      let beat: string | undefined;
      for (let i = 0; i < 600 && !beat; i++) {
        beat = /alive=(\S+)/.exec((await snapshotsNow(VM1))[0]?.description ?? '')?.[1];
        if (!beat) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(beat, 'a heartbeat was written into the snapshot\'s description');
      const now = (await snapshotsNow(VM1))[0]!;
      assert.equal(now.ref.value, snapA.ref.value);
      assert.equal(now.name, snapA.name);
      assert.match(now.description ?? '', new RegExp(`^vmbkp backup; host=host-a pid=${a.pid} .*started=\\S+ alive=\\S+$`));
      assert.ok(new Date(beat).getTime() >= new Date(snapA.created!).getTime(), 'the heartbeat is not older than the snapshot');
    } finally {
      a.child.kill('SIGUSR2');
    }
    const ra = await a.done;
    assert.equal(ra.code, 0, ra.stderr);
    assert.deepEqual(await generations(VM1), [...before1, (before1.at(-1) ?? 0) + 1], 'host A committed its generation');
    assert.deepEqual(await lab.vmbkpSnapshots(VM1), []);
  });

  it('another host\'s snapshot with an old heartbeat is an orphan: removed, and the backup runs', async () => {
    const vm = await findVm(session, VM1);
    // Taken just now by the lab's clock, but its last heartbeat is two hours old: the heartbeat is what counts.
    const old = new Date(Date.now() - 2 * HOUR);
    await createSnapshot(session, vm.ref, VM1, 'vmbkp-stale', {
      description: backupSnapshotDescription({ host: 'host-gone', pid: 4242, start: '123', boot: 'b0a7' }, old, old),
    });
    assert.deepEqual(await dryRunOrphans(VM1), ['vmbkp-stale']);
    const r = await vmbkp(backupArgs(VM1), asHost('host-b'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removing snapshot vmbkp-stale of VM lab-vm-1, left by an earlier run of host host-gone \(no sign of life for 2 h 0 min\)/);
    assert.deepEqual(await lab.vmbkpSnapshots(VM1), []);
  });

  it('another host\'s snapshot with a fresh heartbeat, or none yet and a fresh creation (an older vmbkp), is refused and kept', async () => {
    const vm = await findVm(session, VM1);
    try {
      const descriptions = [
        backupSnapshotDescription({ host: 'host-a', pid: 4243 }, new Date(Date.now() - 5 * HOUR), new Date()),
        'vmbkp backup; host=host-a pid=4243 started=2026-11-22T03:16:31.000Z',
      ];
      for (const description of descriptions) {
        await createSnapshot(session, vm.ref, VM1, 'vmbkp-fresh', { description });
        assert.deepEqual(await dryRunOrphans(VM1), [], 'the dry run does not call it an orphan either');
        const gens = await generations(VM1);
        const r = await vmbkp(backupArgs(VM1), asHost('host-b'));
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /VM lab-vm-1 is being backed up by vmbkp process 4243 on host host-a \(snapshot vmbkp-fresh, last sign of life \d+ (s|min) ago/);
        assert.deepEqual(await lab.vmbkpSnapshots(VM1), ['vmbkp-fresh']);
        assert.deepEqual(await generations(VM1), gens);
        await removeAll(VM1);
      }
      // The orphan age is a setting: at 0 minutes the same fresh snapshot is an orphan.
      await createSnapshot(session, vm.ref, VM1, 'vmbkp-fresh', { description: descriptions[0]! });
      const r = await vmbkp(backupArgs(VM1), asHost('host-b', { VMBKP_SNAPSHOT_ORPHAN_MINUTES: '0' }));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /removing snapshot vmbkp-fresh of VM lab-vm-1, left by an earlier run of host host-a/);
      assert.deepEqual(await lab.vmbkpSnapshots(VM1), []);
    } finally {
      await removeAll(VM1);
    }
  });

  it('a snapshot removed under a running backup makes it fail: no generation is committed', async () => {
    const gens = await generations(VM1);
    assert.ok(gens.length > 0, 'an earlier test made generations');
    const a = startVmbkp(backupArgs(VM1), asHost('host-a', { VMBKP_FAILPOINT: 'backup:before-commit:pause' }));
    try {
      await a.stderrMatching(/failpoint backup:before-commit: paused/);
      // Every disk is read and stored; the snapshot goes (consolidated into the base) before the commit.
      const [snap] = await snapshotsNow(VM1);
      assert.ok(snap && snap.name.startsWith('vmbkp-'));
      await removeSnapshot(session, snap.ref, `removing ${snap.name}`);
      a.child.kill('SIGUSR2');
      const r = await a.done;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`snapshot ${snap.name} \\(${snap.ref.value}\\) of VM ${VM1} was removed while the backup read it .*no generation is committed`));
      assert.deepEqual(await generations(VM1), gens, 'no generation was committed');
    } finally {
      a.child.kill('SIGUSR2');
      await a.done;
    }
    assert.deepEqual(await lab.vmbkpSnapshots(VM1), []);
  });

  it('a snapshot removed while the backup reads its disk (consolidated into the file being read) makes it fail: no generation is committed', async () => {
    const gens = await generations(VM1);
    await lab.resetStats();
    // The backup's first read of the disk file is held until the test lets it go.
    await lab.gateFolder(2, 600_000);
    const a = startVmbkp(backupArgs(VM1), asHost('host-a'));
    try {
      while ((await lab.stats()).maxDisksReadAtOnce < 1) {
        if (a.child.exitCode !== null) assert.fail(`the backup ended before reading: ${(await a.done).stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const [snap] = await snapshotsNow(VM1);
      assert.ok(snap && snap.name.startsWith('vmbkp-'));
      // The guest writes after the snapshot; removing it merges that into the base the backup reads.
      await lab.write(VM1, 2000, 2 * MiB, Buffer.alloc(64 * 1024, 0x5a));
      await removeSnapshot(session, snap.ref, `removing ${snap.name}`);
      await lab.ungateFolder();
      const r = await a.done;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`snapshot ${snap.name} \\(${snap.ref.value}\\) of VM ${VM1} was removed while the backup read it .*no generation is committed`));
      assert.deepEqual(await generations(VM1), gens, 'no generation was committed');
    } finally {
      await lab.ungateFolder();
      await a.done.catch(() => {});
    }
  });
});
