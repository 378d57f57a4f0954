/**
 * A VM backup restored as a new VM, against the vSphere lab: CreateVM_Task from the
 * stored configuration, disks uploaded through /folder (https) or written through a
 * writable nbdkit vddk (a stand-in, as in vsphere-vddk.test.ts), read back and checked,
 * powered on when asked. Bad input fails with one line and its exit code and leaves no
 * VM and no files behind; --overwrite writes a powered-off VM's disks and refuses a
 * running one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeImage, oneLine, sha256File, startVmbkp, tempDir, vmbkp } from './helpers.js';
import { Lab, type LabVm } from './lab.js';
import { installVddkStandin } from './vddk-standin.js';
import { vmsInFolder } from '../src/vsphere/inventory.js';
import { VsphereSession } from '../src/vsphere/session.js';
import { taskOf, waitForTask } from '../src/vsphere/task.js';
import { MoRef, Typed } from '../src/vsphere/xml.js';

const MiB = 1024 * 1024;
const SRC = 'lab-vm-1';

interface RestoreJson {
  vm: string; moref: string; created: boolean; poweredOn: boolean; identity: string;
  disks: { name: string; key: number; fileName: string; size: number; bytesWritten: number }[];
}

/** The disks of a VM by controller type, bus and unit, with capacity and provisioning. */
function diskLayout(vm: LabVm): string[] {
  return vm.disks.map((d) => {
    const c = vm.controllers.find((x) => x.key === d.controllerKey);
    return `${c?.type}:${c?.busNumber}:${d.unitNumber} ${d.capacity} thin=${d.thin}`;
  }).sort();
}

function controllerLayout(vm: LabVm): string[] {
  return vm.controllers.map((c) => `${c.type}:${c.busNumber}`).sort();
}

/** Disk sha256 by controller bus and unit, so disks of two VMs compare whatever their keys. */
async function shasByUnit(lab: Lab, vm: LabVm): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const d of vm.disks) {
    const c = vm.controllers.find((x) => x.key === d.controllerKey);
    out.set(`${c?.type}:${c?.busNumber}:${d.unitNumber}`, await lab.sha256(vm.name, d.key));
  }
  return out;
}

describe('VM restore against the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  let source: LabVm;
  const frozen: Map<string, string>[] = []; // per generation: sha256 by unit at backup time
  const outputs: string[] = [];

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '2', '--disks', '2', '--nics', '2', '--disk-size', String(32 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);

    // Two generations; the guest writes between them, not during them, so the disks' current
    // sha256 right after each backup is what that generation holds.
    source = await lab.vm(SRC);
    for (let g = 1; g <= 2; g++) {
      const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', SRC, ...(g === 1 ? ['--enable-cbt'] : [])]);
      assert.equal(r.code, 0, r.stderr);
      frozen.push(await shasByUnit(lab, source));
      if (g === 1) {
        await lab.write(SRC, 2000, 5 * MiB + 4096, randomBytes(300 * 1024));
        await lab.write(SRC, 2001, 17 * MiB, randomBytes(64 * 1024));
      }
    }
    for (const [unit, sha] of frozen[0]!) assert.notEqual(frozen[1]!.get(unit), sha, `the guest changed ${unit} between the generations`);
  });
  after(async () => {
    for (const o of outputs) assert.ok(!o.includes(lab.info.password), 'the password is never printed');
    await lab?.stop();
    await cleanup?.();
  });

  async function restore(args: string[], env?: NodeJS.ProcessEnv) {
    const r = await vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', SRC, ...args], env ? { env } : {});
    outputs.push(r.stdout, r.stderr);
    return r;
  }

  async function restoreJson(args: string[], env?: NodeJS.ProcessEnv): Promise<RestoreJson> {
    const r = await restore([...args, '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as RestoreJson;
  }

  /** The devices of a restored VM are the source's: controllers, disk places and sizes, NIC types; contents are generation g's. */
  async function assertRestored(name: string, g: number, networks: string[]): Promise<LabVm> {
    const vm = await lab.vm(name);
    assert.deepEqual(controllerLayout(vm), controllerLayout(source));
    assert.deepEqual(diskLayout(vm), diskLayout(source));
    assert.deepEqual(vm.nics.map((n) => n.type), source.nics.map((n) => n.type));
    assert.deepEqual(vm.nics.map((n) => n.network), networks);
    assert.deepEqual(await shasByUnit(lab, vm), frozen[g - 1], `the disks of ${name} hold generation ${g}`);
    return vm;
  }

  it('generation 1 and latest restore as new VMs: same devices, disks equal to each generation, networks mapped, powered on, new identity', async () => {
    const g1 = await restoreJson(['--generation', '1', '--name', 'restored-g1', '--network', 'VM Network=backup-net', '--folder', 'DC0/vm/restored', '--power-on']);
    assert.equal(g1.created, true);
    assert.equal(g1.poweredOn, true);
    assert.equal(g1.identity, 'new');
    assert.deepEqual(g1.disks.map((d) => d.fileName), ['[LocalDS_0] restored-g1/restored-g1.vmdk', '[LocalDS_0] restored-g1/restored-g1_1.vmdk']);
    const vm1 = await assertRestored('restored-g1', 1, ['backup-net', 'backup-net']);
    assert.equal(vm1.powerState, 'poweredOn');

    const latest = await restoreJson(['--name', 'restored-latest', '--power-on', '--host', 'DC0_H0', '--resource-pool', 'Resources', '--datastore', 'LocalDS_0']);
    assert.equal(latest.poweredOn, true);
    const vm2 = await assertRestored('restored-latest', 2, ['VM Network', 'VM Network']);
    assert.equal(vm2.powerState, 'poweredOn');

    for (const vm of [vm1, vm2]) {
      assert.notEqual(vm.uuid, source.uuid, `${vm.name} has a new BIOS UUID`);
      for (const [i, nic] of vm.nics.entries()) assert.notEqual(nic.macAddress, source.nics[i]!.macAddress, `${vm.name} NIC ${i} has a new MAC`);
      // The files are where ESXi puts them: the VM's directory, descriptor + flat extent of the disk's capacity.
      for (const d of vm.disks) assert.equal((await fs.stat(d.extentPath)).size, d.capacity);
    }

    // --folder placed it there.
    const session = await VsphereSession.connect({ url: lab.info.url, user: lab.info.user, password: lab.info.password, tls: { kind: 'pinned', thumbprint: lab.info.thumbprintSha256 } });
    try {
      assert.deepEqual((await vmsInFolder(session, 'DC0/vm/restored')).map((v) => v.name), ['restored-g1']);
    } finally {
      await session.close();
    }
  });

  it('a restored VM is a VM like any other: it backs up online, and its backup restores to the same bytes', async () => {
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'restored-latest', '--enable-cbt']);
    assert.equal(r.code, 0, r.stderr);
    const vm = await lab.vm('restored-latest');
    assert.deepEqual(vm.snapshots, [], 'the backup snapshot is gone');
    for (const d of vm.disks) {
      const out = path.join(dir, `restored-latest-${d.key}.img`);
      const rr = await vmbkp(['restore', '--repo', repo, '--set', 'restored-latest', '--disk', String(d.key), '--to', `file:${out}`]);
      assert.equal(rr.code, 0, rr.stderr);
      assert.equal(await sha256File(out), await lab.sha256('restored-latest', d.key));
    }
  });

  it('--disks-at-once 2 writes both disks at once (the default, one after the other); the disks are the generation\'s', async () => {
    // The gate makes parallel uploads overlap however fast they are, and would expose serial ones that were not.
    await lab.resetStats();
    await lab.gateFolder(2, 500);
    await restoreJson(['--name', 'restored-serial']).finally(() => lab.ungateFolder());
    assert.equal((await lab.stats()).maxDisksWrittenAtOnce, 1);
    await assertRestored('restored-serial', 2, ['VM Network', 'VM Network']);

    await lab.resetStats();
    await lab.gateFolder(2);
    const r = await restoreJson(['--name', 'restored-parallel', '--disks-at-once', '2']).finally(() => lab.ungateFolder());
    assert.equal((await lab.stats()).maxDisksWrittenAtOnce, 2);
    assert.deepEqual(r.disks.map((d) => d.name), source.disks.map((d) => String(d.key)), 'results in the order of the disks');
    await assertRestored('restored-parallel', 2, ['VM Network', 'VM Network']);
  });

  it('--keep-identity keeps the BIOS UUID and the MAC addresses', async () => {
    const r = await restoreJson(['--generation', '1', '--name', 'restored-same', '--keep-identity']);
    assert.equal(r.identity, 'kept');
    assert.equal(r.poweredOn, false);
    const vm = await assertRestored('restored-same', 1, ['VM Network', 'VM Network']);
    assert.equal(vm.powerState, 'poweredOff');
    assert.equal(vm.uuid, source.uuid);
    assert.deepEqual(vm.nics.map((n) => n.macAddress), source.nics.map((n) => n.macAddress));
  });

  describe('bad input: one line, its exit code, no VM and no files left', () => {
    let vmsBefore: string[];
    let filesBefore: string[];
    before(async () => {
      vmsBefore = (await lab.vms()).map((v) => v.name).sort();
      filesBefore = (await fs.readdir(lab.info.datastoreDir)).sort();
    });

    async function refused(args: string[], code: number, message: RegExp): Promise<void> {
      const r = await restore(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(oneLine(r.stderr), message);
      assert.equal(r.stdout, '');
      assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), vmsBefore, 'no VM was left behind');
      assert.deepEqual((await fs.readdir(lab.info.datastoreDir)).sort(), filesBefore, 'no files were left behind');
    }

    it('the name of an existing VM, without --overwrite: exit 2', async () => {
      const before = await lab.sha256('lab-vm-2', 2000);
      await refused(['--name', 'lab-vm-2'], 2,
        /^vmbkp: error: restoring set lab-vm-1 generation 2 as VM lab-vm-2 refused: a VM of that name exists on 127\.0\.0\.1:\d+ \(vm-\d+\); choose another --name, or pass --overwrite/);
      assert.equal(await lab.sha256('lab-vm-2', 2000), before);
    });

    it('an unknown datastore, network, host, folder or resource pool: exit 2, naming what exists', async () => {
      await refused(['--name', 'x', '--datastore', 'nope'], 2, /^vmbkp: error: datastore "nope" does not exist in datacenter DC0 \(it has: LocalDS_0, LocalDS_1\)$/);
      await refused(['--name', 'x', '--network', 'VM Network=nope'], 2,
        /^vmbkp: error: network "nope" \(--network VM Network=nope\) does not exist in datacenter DC0 \(it has: VM Network, backup-net\)$/);
      await refused(['--name', 'x', '--network', 'lab-net=backup-net'], 2, /^vmbkp: error: --network maps "lab-net", but no NIC of set lab-vm-1 generation 2 is on it \(its NICs are on: VM Network\)$/);
      await refused(['--name', 'x', '--host', 'esx-9'], 2, /^vmbkp: error: host "esx-9" does not exist in datacenter DC0 \(it has: /);
      await refused(['--name', 'x', '--folder', 'DC0/vm/nope'], 2, /^vmbkp: error: VM folder "DC0\/vm\/nope" does not exist/);
      await refused(['--name', 'x', '--resource-pool', 'nope'], 2, /^vmbkp: error: resource pool "nope" does not exist in datacenter DC0 \(it has: Resources\)$/);
    });

    it('out of space while a disk is written: exit 1, and the new VM is destroyed', async () => {
      await lab.fault('datastore-full', { after: 3 * MiB });
      const stored = (await lab.stats()).folderBytesStored;
      await refused(['--name', 'restore-full'], 1,
        /^vmbkp: error: writing disk 2000 of VM restore-full to https:\[LocalDS_0\] restore-full\/restore-full-flat\.vmdk failed: HTTP 500: Insufficient disk space on datastore 'LocalDS_0'\. \(the incomplete VM restore-full was removed\)$/);
      assert.ok((await lab.stats()).folderBytesStored > stored, 'the upload had begun when the datastore filled up');
    });

    it('out of space while two disks are written at once: exit 1, the other disk stops, the new VM is destroyed', async () => {
      await lab.fault('datastore-full', { after: 3 * MiB });
      await refused(['--name', 'restore-full2', '--disks-at-once', '2'], 1,
        /^vmbkp: error: writing disk 200[01] of VM restore-full2 to https:\[LocalDS_0\] restore-full2\/restore-full2(_1)?-flat\.vmdk failed: HTTP 500: Insufficient disk space on datastore 'LocalDS_0'\. \(the incomplete VM restore-full2 was removed\)$/);
    });

    it('--disks-at-once 0 or a word: exit 2', async () => {
      await refused(['--name', 'x', '--disks-at-once', '0'], 2, /^vmbkp: error: --disks-at-once needs at least 1$/);
      await refused(['--name', 'x', '--disks-at-once', 'two'], 2, /^vmbkp: error: --disks-at-once needs a whole number, got "two"$/);
    });

    it('a disk stored wrong (corruption injected, the upload answered 200): the read-back finds it, exit 1, the VM is destroyed', async () => {
      await lab.fault('datastore-corrupt', { after: 5 * MiB + 4096 + 10 });
      await refused(['--name', 'restore-corrupt'], 1,
        /^vmbkp: error: verifying disk 2000 of VM restore-corrupt \(disk 2000 of set lab-vm-1 generation 2\) failed: the chunk at offset 5242880 reads back as SHA-256 [0-9a-f]{64}, the backup has SHA-256 [0-9a-f]{64} \(the incomplete VM restore-corrupt was removed\)$/);
    });

    it('interrupted (SIGINT) once the VM exists: it is destroyed before vmbkp exits', async () => {
      const cli = startVmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', SRC, '--name', 'restore-int'],
        { env: { VMBKP_FAILPOINT: 'restore:vm-created:pause' } });
      await cli.stderrMatching(/failpoint restore:vm-created: paused/);
      assert.ok((await lab.vms()).some((v) => v.name === 'restore-int'), 'the VM exists');
      cli.child.kill('SIGINT');
      await cli.stderrMatching(/SIGINT: stopping the restore/);
      cli.child.kill('SIGUSR2');
      const r = await cli.done;
      outputs.push(r.stdout, r.stderr);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /vmbkp: error: restoring set lab-vm-1 generation 2 as VM restore-int was interrupted \(SIGINT\) \(the incomplete VM restore-int was removed\)\n$/);
      assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), vmsBefore);
      assert.deepEqual((await fs.readdir(lab.info.datastoreDir)).sort(), filesBefore);
    });

    it('out of space when the VM is created: exit 1, nothing created', async () => {
      await lab.fault('datastore-full', { during: 'create' });
      await refused(['--name', 'restore-full'], 1,
        /^vmbkp: error: creating VM restore-full for set lab-vm-1 generation 2 failed: datastore LocalDS_0 is out of space: NoDiskSpace: Insufficient disk space on datastore 'LocalDS_0'\.$/);
    });

    it('a generation that is not a VM backup: exit 2, and what to do instead', async () => {
      const img = path.join(dir, 'plain.img');
      await makeImage(img, '4M', 7);
      assert.equal((await vmbkp(['backup', '--repo', repo, '--set', 'plain', `sda=file:${img}`])).code, 0);
      const r = await vmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', 'plain', '--name', 'x']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneLine(r.stderr), /^vmbkp: error: set plain generation 1 is not a VM backup \(it stores no VM configuration\): restore its disks with --disk NAME --to URI \(disks: sda\)$/);
      assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), vmsBefore);
    });

    it('usage: --name is required, --disk/--to do not mix with --vcenter, a VM restore needs a vCenter', async () => {
      assert.match(oneLine((await restore([])).stderr), /--name is required with --vcenter/);
      assert.match(oneLine((await restore(['--name', 'x', '--disk', '2000'])).stderr), /takes no --disk and no --to/);
      const r = await vmbkp(['restore', '--repo', repo, '--set', SRC, '--name', 'x', '--power-on']);
      assert.equal(r.code, 2);
      // --name makes it a VM restore: with no vCenter named (flag, VMBKP_VCENTER or the config file's default) it says where one can come from.
      assert.match(oneLine(r.stderr), /^vmbkp: error: a VM restore \(--name\) needs a vCenter: give --vcenter URL or NAME, set VMBKP_VCENTER, or set defaults\.vcenter in the config file$/);
    });
  });

  it('killed (SIGKILL) once the VM exists: the next restore to that name removes the unfinished VM and succeeds', async () => {
    const cli = startVmbkp(['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', SRC, '--name', 'restore-killed'],
      { env: { VMBKP_FAILPOINT: 'restore:vm-created:pause' } });
    await cli.stderrMatching(/failpoint restore:vm-created: paused/);
    const half = (await lab.vms()).find((v) => v.name === 'restore-killed');
    assert.ok(half, 'the VM exists');
    cli.child.kill('SIGKILL');
    await cli.done;
    assert.ok((await lab.vms()).some((v) => v.moref === half.moref), 'SIGKILL left the unfinished VM behind');

    const again = await restore(['--name', 'restore-killed']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(oneLine(again.stderr), new RegExp(`vmbkp: warning: removing VM restore-killed \\(${half.moref}\\): an unfinished restore by vmbkp process ${cli.pid} of this host`));
    const named = (await lab.vms()).filter((v) => v.name === 'restore-killed');
    assert.equal(named.length, 1);
    assert.notEqual(named[0]!.moref, half.moref);
    await assertRestored('restore-killed', 2, ['VM Network', 'VM Network']);
    // Finished, it is an ordinary VM: a third restore to the name is refused, not removed.
    const third = await restore(['--name', 'restore-killed']);
    assert.equal(third.code, 2, third.stderr);
    assert.ok((await lab.vms()).some((v) => v.moref === named[0]!.moref));
  });

  it('--overwrite: refused while the VM runs, writes its disks once it is off', async () => {
    // restored-g1 runs (restored with --power-on) and holds generation 1.
    const r = await restore(['--name', 'restored-g1', '--overwrite']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: restoring set lab-vm-1 generation 2 over VM restored-g1 refused: the VM is powered on; power it off first$/);
    await assertRestored('restored-g1', 1, ['backup-net', 'backup-net']);

    await lab.power('restored-g1', 'off');
    const moref = (await lab.vm('restored-g1')).moref;
    const ok = await restoreJson(['--name', 'restored-g1', '--overwrite', '--power-on']);
    assert.equal(ok.created, false);
    assert.equal(ok.moref, moref, 'the same VM');
    const vm = await assertRestored('restored-g1', 2, ['backup-net', 'backup-net']);
    assert.equal(vm.powerState, 'poweredOn');
  });

  it('--overwrite onto a VM whose disks differ from the backup is refused', async () => {
    // lab-vm-2: powered off, its second disk grown by 1 MiB (ReconfigVM_Task, as an administrator would).
    await lab.power('lab-vm-2', 'off');
    const target = await lab.vm('lab-vm-2');
    const session = await VsphereSession.connect({ url: lab.info.url, user: lab.info.user, password: lab.info.password, tls: { kind: 'pinned', thumbprint: lab.info.thumbprintSha256 } });
    try {
      const grown = (32 + 1) * MiB;
      const res = await session.call('ReconfigVM_Task', new MoRef('VirtualMachine', target.moref), {
        spec: { deviceChange: [{ operation: 'edit', device: new Typed('VirtualDisk', { key: 2001, controllerKey: 1000, unitNumber: 1, capacityInKB: grown / 1024, capacityInBytes: grown }) }] },
      });
      await waitForTask(session, taskOf(res), { what: 'growing a disk of lab-vm-2' });
    } finally {
      await session.close();
    }
    const before = [await lab.sha256('lab-vm-2', 2000), await lab.sha256('lab-vm-2', 2001)];
    const r = await restore(['--name', 'lab-vm-2', '--overwrite']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: restoring set lab-vm-1 generation 2 over VM lab-vm-2 refused: its disks \(33554432, 34603008 bytes\) are not the backup's \(33554432, 33554432 bytes\)$/);
    assert.deepEqual([await lab.sha256('lab-vm-2', 2000), await lab.sha256('lab-vm-2', 2001)], before, 'nothing was written');
  });

  it('vddk transport: each disk written through a writable nbdkit vddk, then checked', async () => {
    const standin = await installVddkStandin(dir, 'standin-restore', lab, 'write');
    const r = await restoreJson(['--generation', '1', '--name', 'restored-vddk', '--transport', 'vddk'], standin.env);
    const calls = await standin.calls();
    assert.equal(calls.length, 2, 'one nbdkit per disk');
    for (const [i, args] of calls.entries()) {
      assert.ok(!args.includes('--readonly'), 'writable');
      assert.ok(args.includes(`vm=moref=${r.moref}`), args.join(' '));
      assert.ok(args.includes(`file=${r.disks[i]!.fileName}`), args.join(' '));
      assert.ok(!args.some((a) => a.startsWith('snapshot=')), 'no snapshot: the VM itself');
    }
    await assertRestored('restored-vddk', 1, ['VM Network', 'VM Network']);
  });
});
