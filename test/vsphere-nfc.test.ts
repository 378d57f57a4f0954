/**
 * The nfc transport against the lab's vSAN-like datastore (disks are objects: no
 * `-flat.vmdk` for the https transport): export leases read the snapshot's disks, are
 * kept alive during a long read, and are released in every outcome — completed after a
 * backup, aborted after a failed read, and aborted by the next run after a kill -9.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sha256File, startVmbkp, vmbkp, vmbkpJson } from './helpers.js';
import { type Lab, type LabRepository, type LabStats, startLabRepository } from './lab.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import type { VsphereSession } from '../src/vsphere/session.js';
import { removeSnapshot, snapshotsOf } from '../src/vsphere/vm.js';

const MiB = 1024 * 1024;

interface NfcStats extends LabStats {
  nfcLeasesHeld: number; nfcLeaseProgressCalls: number; nfcLeasesExpired: number; nfcLeasesAborted: number; nfcBytesServed: number; nfcBytesImported: number;
}

interface BackupJson { vms: { ok: boolean; generation?: { disks: { name: string; mode: string; bytesRead: number; note?: string }[] } }[] }

describe('the nfc transport on a datastore without flat files, against the lab', () => {
  let lab: Lab;
  let dir: string;
  let repo: string;
  let pw: string;
  let session: VsphereSession;
  let fixture: LabRepository | undefined;
  let stateDir: string;

  before(async () => {
    // Leases time out after 2 s without progress: every backup here must keep its lease alive.
    fixture = await startLabRepository(['--vms', '2', '--disks', '2', '--disk-size', String(8 * MiB),
      '--datastore-kind', 'vsan', '--nfc-lease-timeout', '2']);
    ({ lab, dir, repo, pw, session } = fixture);
    // Import lease records (vsphere/import-lease-record.ts) of every vmbkp run here, inherited by the CLI.
    stateDir = path.join(dir, 'state');
    process.env['VMBKP_STATE_DIR'] = stateDir;
  });
  after(() => fixture?.stop());

  const stats = async () => (await lab.stats()) as NfcStats;
  /** The VM's .vmx and nvram a generation saved: small files that go through /folder whatever the disks' transport. */
  const savedFiles = async (set: string, generation: string): Promise<{ name: string; size: number }[]> =>
    (await vmbkpJson<{ machineDetails?: { savedFiles?: { name: string; size: number }[] } }>(['show', '--repo', repo, '--set', set, '--generation', generation])).machineDetails?.savedFiles ?? [];
  const backup = (vm: string, args: string[]) => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, ...args]);

  async function restoreSha(set: string, generation: number, disk: number): Promise<string> {
    const out = path.join(dir, `restore-${set}-${generation}-${disk}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', String(disk), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await sleep(100);
    }
    throw new Error(`gave up waiting for ${what}`);
  }

  it('https cannot read a disk that is a vSAN object: one line that says to use --transport nfc', async () => {
    const r = await backup('lab-vm-1', ['--enable-cbt']);
    assert.equal(r.code, 2, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('vmbkp: error'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, /disk 2000 of VM lab-vm-1 is a vsan object \(vsan:\/\/[0-9a-f-]+\), not a file the https transport can read: use --transport nfc$/);
    assert.deepEqual(await lab.vmbkpSnapshots('lab-vm-1'), []);
  });

  it('full, guest writes, incr over nfc: each generation restores to what its snapshot froze; the lease lives through a long read and is completed', async () => {
    const vm = 'lab-vm-1';
    const disks = (await lab.vm(vm)).disks.map((d) => d.key);
    // Nobody writes during these backups: the current view is what the snapshot froze.
    const g1 = new Map<number, string>();
    for (const key of disks) g1.set(key, await lab.sha256(vm, key));
    // The first disk read waits 5 s in the lab, more than twice the lease's timeout.
    await lab.gateFolder(99, 5000);
    const before1 = await stats();
    const r1 = await backup(vm, ['--transport', 'nfc', '--enable-cbt', '--json']);
    await lab.ungateFolder();
    assert.equal(r1.code, 0, r1.stderr);
    const j1 = JSON.parse(r1.stdout) as BackupJson;
    assert.deepEqual(j1.vms[0]!.generation!.disks.map((d) => d.mode), ['full', 'full']);
    const after1 = await stats();
    assert.ok(after1.nfcLeaseProgressCalls > before1.nfcLeaseProgressCalls, 'the lease was kept alive');
    assert.equal(after1.nfcLeasesExpired, before1.nfcLeasesExpired, 'no lease timed out');
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted, 'the lease was completed, not aborted');
    assert.equal(after1.nfcLeasesHeld, 0);
    const saved1 = await savedFiles(vm, 'latest');
    assert.ok(saved1.length > 0, 'the .vmx and nvram were saved');
    assert.equal(after1.folderBytesServed - before1.folderBytesServed, saved1.reduce((n, f) => n + f.size, 0), 'no disk data came through /folder: only the .vmx and nvram');
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);

    const writes = disks.map((key, i) => ({ key, offset: (2 + 3 * i) * MiB + 100, length: 100 * 1024 }));
    for (const w of writes) await lab.write(vm, w.key, w.offset, randomBytes(w.length));
    const g2 = new Map<number, string>();
    for (const key of disks) g2.set(key, await lab.sha256(vm, key));
    const r2 = await backup(vm, ['--transport', 'nfc', '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    for (const d of (JSON.parse(r2.stdout) as BackupJson).vms[0]!.generation!.disks) {
      assert.equal(d.mode, 'incr', `disk ${d.name}: ${d.note ?? ''}`);
      assert.ok(d.bytesRead > 0 && d.bytesRead <= 2 * MiB, `disk ${d.name} read ${d.bytesRead} bytes for a 100 KiB change`);
    }
    for (const key of disks) {
      assert.equal(await restoreSha(vm, 1, key), g1.get(key), `disk ${key} of generation 1`);
      assert.equal(await restoreSha(vm, 2, key), g2.get(key), `disk ${key} of generation 2`);
    }
    assert.equal((await stats()).nfcLeasesHeld, 0);
  });

  interface RestoreJson { vm: string; disks: { name: string; key: number }[] }
  const restoreVm = (args: string[]) => vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', 'lab-vm-1', ...args]);

  it('restore over nfc: ImportVApp makes a new VM on the vSAN datastore, its disks equal the backup; the import lease lives through a long upload', async () => {
    // lab-vm-1's disks now hold what its newest generation (2) froze.
    const want = new Map<string, string>();
    for (const d of (await lab.vm('lab-vm-1')).disks) want.set(String(d.key), await lab.sha256('lab-vm-1', d.key));
    // The first upload waits 5 s in the lab, more than twice the lease's 2 s timeout.
    await lab.gateFolder(99, 5000);
    const before1 = await stats();
    const r = await restoreVm(['--name', 'nfc-restored', '--transport', 'nfc', '--json']);
    await lab.ungateFolder();
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as RestoreJson;
    assert.deepEqual(out.disks.map((d) => d.name).sort(), [...want.keys()].sort());
    for (const d of out.disks) assert.equal(await lab.sha256('nfc-restored', d.key), want.get(d.name), `restored disk ${d.name}`);
    const after1 = await stats();
    assert.ok(after1.nfcBytesImported > before1.nfcBytesImported, 'the disks came through the import lease');
    const nvram = (await savedFiles('lab-vm-1', 'latest')).filter((f) => f.name.endsWith('.nvram'));
    assert.equal(after1.folderBytesStored - before1.folderBytesStored, nvram.reduce((n, f) => n + f.size, 0), 'no disk byte went through /folder: only the saved nvram');
    assert.ok(after1.nfcLeaseProgressCalls > before1.nfcLeaseProgressCalls, 'the leases were kept alive');
    assert.equal(after1.nfcLeasesExpired, before1.nfcLeasesExpired, 'no lease timed out');
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted, 'import and read-back leases were completed');
    assert.equal(after1.nfcLeasesHeld, 0);
    assert.equal((await lab.vm('nfc-restored')).disks.length, want.size);

    // An import cannot write over an existing VM: one line, a usage error.
    const o = await restoreVm(['--name', 'nfc-restored', '--transport', 'nfc', '--overwrite']);
    assert.equal(o.code, 2, o.stderr);
    assert.match(o.stderr, /^vmbkp: error: restoring .* over VM nfc-restored refused: --transport nfc imports a new VM/m);
  });

  it('an upload that fails aborts the import lease and leaves no VM behind', async () => {
    const before1 = await stats();
    await lab.fault('datastore-full', { vm: 'nfc-failed', during: 'write', after: MiB });
    try {
      const r = await restoreVm(['--name', 'nfc-failed', '--transport', 'nfc']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /vmbkp: error: .*disk \d+ of VM nfc-failed .*nfc:httpnfclease-\d+\/disk-\d\.vmdk failed: .*Insufficient disk space/);
      assert.match(r.stderr, /the incomplete VM nfc-failed was removed/);
    } finally {
      await lab.clearFaults();
    }
    const after1 = await stats();
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted + 1, 'the import lease was aborted');
    assert.equal(after1.nfcLeasesHeld, 0);
    assert.ok(!(await lab.vms()).some((v) => v.name === 'nfc-failed'), 'no half-made VM is left');
  });

  it('a read that keeps failing aborts the lease, and the snapshot is removed', async () => {
    const vm = 'lab-vm-2';
    const before1 = await stats();
    await lab.fault('datastore-read', { vm, after: 100_000, times: -1 });
    try {
      const r = await backup(vm, ['--transport', 'nfc']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /vmbkp: error: .*reading disk 200[01] of VM lab-vm-2 from nfc:httpnfclease-\d+\/disk-[01]\.vmdk failed after 3 attempts/);
    } finally {
      await lab.clearFaults();
    }
    const after1 = await stats();
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted + 1);
    assert.equal(after1.nfcLeasesHeld, 0);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });

  it('kill -9 during the read leaves the lease holding the VM; the next run aborts it and backs up', async () => {
    const vm = 'lab-vm-2';
    // A lease that would outlive the test: only an abort can free the VM.
    await lab.request('POST', '/nfc/lease-timeout?seconds=3600');
    await lab.gateFolder(99, 600_000);
    const ref = (await findVm(session, vm)).ref;
    const snapshots = async () => snapshotsOf((await retrieveOne(session, ref, ['snapshot'])).get('snapshot'));
    const cli = startVmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'nfc']);
    try {
      await until('the lease recorded on the snapshot', async () => (await snapshots()).some((s) => /nfcLease=\S+/.test(s.description ?? '')));
      cli.child.kill('SIGKILL');
      await cli.done;
    } finally {
      await lab.ungateFolder();
    }
    assert.equal((await stats()).nfcLeasesHeld, 1, 'the killed run left its lease');
    const left = (await snapshots()).find((s) => s.name.startsWith('vmbkp-'));
    assert.ok(left);
    await assert.rejects(removeSnapshot(session, left.ref, 'removing the left snapshot'), /not allowed in the current state/);

    const before1 = await stats();
    const r = await backup(vm, ['--transport', 'nfc']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`aborted export lease \\S+ on snapshot ${left.name} of VM lab-vm-2, left unfinished by an earlier run`));
    const after1 = await stats();
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted + 1);
    assert.equal(after1.nfcLeasesHeld, 0);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });
  it('kill -9 during an nfc restore: the next restore aborts the recorded import lease, removes the left VM and restores', async () => {
    // Leases made from the previous test on last an hour: only an abort frees the VM before the test ends.
    const want = new Map<string, string>();
    for (const d of (await lab.vm('lab-vm-1')).disks) want.set(String(d.key), await lab.sha256('lab-vm-1', d.key));
    const leases = path.join(stateDir, 'import-leases');
    await lab.gateFolder(99, 600_000);
    const cli = startVmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', 'lab-vm-1', '--name', 'nfc-killed', '--transport', 'nfc']);
    try {
      await until('the import under way', async () => (await lab.vms()).some((v) => v.name === 'nfc-killed') && (await stats()).nfcLeasesHeld === 1
        && (await readdir(leases).catch(() => [])).length === 1);
      cli.child.kill('SIGKILL');
      await cli.done;
    } finally {
      await lab.ungateFolder();
    }
    const files = await readdir(leases);
    assert.equal(files.length, 1, 'the killed run recorded its import lease');
    const record = path.join(leases, files[0]!);
    assert.equal((await stat(record)).mode & 0o777, 0o600);
    assert.match(await readFile(record, 'utf8'), /"lease":"httpnfclease-\d+".*"vmName":"nfc-killed"/);
    assert.equal((await stats()).nfcLeasesHeld, 1, 'the lease of the killed run still holds the VM');

    const before1 = await stats();
    const r = await restoreVm(['--name', 'nfc-killed', '--transport', 'nfc', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /aborted import lease httpnfclease-\d+ of VM nfc-killed \(vm-\d+\), left by vmbkp process \d+, which is gone/);
    const after1 = await stats();
    assert.equal(after1.nfcLeasesAborted, before1.nfcLeasesAborted + 1, 'the recorded lease was aborted');
    assert.equal(after1.nfcLeasesHeld, 0);
    assert.deepEqual(await readdir(leases), [], 'no lease record is left');
    assert.equal((await lab.vms()).filter((v) => v.name === 'nfc-killed').length, 1, 'the left VM is gone, the new one is there');
    const out = JSON.parse(r.stdout) as RestoreJson;
    assert.deepEqual(out.disks.map((d) => d.name).sort(), [...want.keys()].sort());
    for (const d of out.disks) assert.equal(await lab.sha256('nfc-killed', d.key), want.get(d.name), `restored disk ${d.name}`);
  });
});
