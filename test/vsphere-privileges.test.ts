/**
 * vCenter privileges, against the lab's users: a role holding exactly the privileges the
 * README lists for a backup (a restore, a restore --overwrite) can do it; a role missing
 * any one of them gets exit code 7 and one line naming the missing privilege and its
 * object — whether vCenter refused a call (NoPermission) or /folder answered 403.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, vmbkp, vmbkpJson } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { removeSnapshot } from '../src/vsphere/vm.js';
import { MoRef } from '../src/vsphere/xml.js';

const MiB = 1024 * 1024;
const VM = 'lab-vm-1';
/** VMs lab-vm-2 … for the backups refused for a missing privilege, one each. */
const REFUSAL_VMS = 7;

type Column = 'backup' | 'restore' | 'restore --overwrite';

/** The privileges the README's table marks ✓ (needed for the command to succeed) in a column. */
async function readmePrivileges(column: Column): Promise<string[]> {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split('\n### vCenter privileges\n')[1]?.split('\n#')[0];
  assert.ok(section, 'the README has a "vCenter privileges" section');
  const rows = section.split('\n').filter((l) => l.startsWith('|')).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
  const col = rows[0]!.indexOf(column);
  assert.ok(col > 0, `the table has a ${column} column`);
  const out = rows.slice(2).filter((r) => r[col] === '✓').map((r) => r[0]!.replace(/`/g, ''));
  assert.ok(out.length > 0);
  return out;
}

describe('vCenter privileges, against the lab', () => {
  let lab: Lab;
  let fixture: LabRepository | undefined;
  let repo: string;
  let dir: string;

  before(async () => {
    fixture = await startLabRepository(['--vms', String(1 + REFUSAL_VMS), '--disks', '1', '--disk-size', String(4 * MiB)]);
    ({ lab, repo, dir } = fixture);
  });
  after(() => fixture?.stop());

  /** Makes (or remakes) lab user NAME with exactly `privileges`; returns the CLI flags that log in as it. */
  async function user(name: string, privileges: readonly string[]): Promise<string[]> {
    const q = new URLSearchParams({ privileges: privileges.join(','), password: `${name}-password` });
    await lab.request('POST', `/users/${name}?${q}`);
    const file = path.join(dir, `${name}.password`);
    await fs.writeFile(file, `${name}-password\n`, { mode: 0o600 });
    return ['--vcenter', lab.info.url, '--user', name, '--password-file', file, '--thumbprint', lab.info.thumbprintSha256];
  }

  const without = (all: readonly string[], p: string) => all.filter((x) => x !== p);
  /** Generations per set (one `list` for all). */
  const generations = async () => new Map((await vmbkpJson<{ sets: { name: string; generations: unknown[] }[] }>(['list', '--repo', repo]))
    .sets.map((x) => [x.name, x.generations.length]));

  /** Exit 7, one line naming the user, the privilege and where it is needed. */
  function refused(r: { code: number | null; stderr: string }, who: string, privilege: string, on: RegExp): void {
    assert.equal(r.code, 7, `without ${privilege}: ${r.stderr}`);
    const err = r.stderr.split('\n').filter((l) => l.startsWith('vmbkp: error:'));
    assert.equal(err.length, 1, r.stderr);
    assert.match(err[0]!, new RegExp(`user ${who} may not .*${privilege.replace(/\./g, '\\.')}`), r.stderr);
    assert.match(err[0]!, on, r.stderr);
  }

  it("the lab's restricted user (a read-only role) is refused a backup: exit 7, naming the privilege and the VM", async () => {
    const file = path.join(dir, 'restricted.password');
    await fs.writeFile(file, `${lab.info.restrictedPassword}\n`);
    const r = await vmbkp(['backup', '--repo', repo, '--vcenter', lab.info.url, '--user', lab.info.restrictedUser, '--password-file', file,
      '--thumbprint', lab.info.thumbprintSha256, '--vm', VM]);
    refused(r, lab.info.restrictedUser, 'VirtualMachine.State.CreateSnapshot', /on VirtualMachine lab-vm-1 \(vm-\d+\)/);
    assert.deepEqual(await lab.vmbkpSnapshots(VM), []);
  });

  it("a role with exactly the README's backup privileges backs up (full, then incremental); missing any one gets exit 7 naming it", async () => {
    const needed = await readmePrivileges('backup');
    const ok = await user('backup', needed);
    const first = await vmbkp(['backup', '--repo', repo, ...ok, '--vm', VM, '--enable-cbt']);
    assert.equal(first.code, 0, first.stderr);
    await lab.write(VM, 2000, MiB, Buffer.from('changed by the guest'));
    const second = await vmbkp(['backup', '--repo', repo, ...ok, '--vm', VM]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^2000\s+incr\b/m, 'the second backup asked vSphere for the changes');

    // Asking for the changes since the last backup is refused: exit 7, not a whole-disk read for "unknown" changes.
    await lab.write(VM, 2000, 3 * MiB, Buffer.from('changed once more'));
    const noQcda = await vmbkp(['backup', '--repo', repo, ...await user('no-qcda', without(needed, 'VirtualMachine.Provisioning.DiskRandomRead')), '--vm', VM]);
    refused(noQcda, 'no-qcda', 'VirtualMachine.Provisioning.DiskRandomRead', /on VirtualMachine lab-vm-1 \(vm-\d+\)/);
    assert.doesNotMatch(noQcda.stderr, /cannot list the changes/);

    // With CBT on, removing the backup's own snapshot is the first use of RemoveSnapshot: refused after the commit.
    await lab.write(VM, 2000, 2 * MiB, Buffer.from('changed again'));
    const late = await vmbkp(['backup', '--repo', repo, ...await user('late', without(needed, 'VirtualMachine.State.RemoveSnapshot')), '--vm', VM]);
    refused(late, 'late', 'VirtualMachine.State.RemoveSnapshot', /on VirtualMachine lab-vm-1 \(vm-\d+\)/);
    assert.match(late.stderr, /generation 3 of set lab-vm-1 was committed and is complete/);
    assert.equal((await generations()).get(VM), 3, 'the refused incremental committed nothing, the late refusal did');
    const left = (await lab.vm(VM)).snapshots;
    assert.equal(left.length, 1, 'the snapshot stays for the next run');
    await removeSnapshot(fixture!.session, new MoRef('VirtualMachineSnapshot', left[0]!.moref), 'removing the snapshot left');

    // Each case backs up a VM of its own for the first time (CBT off, turned on by --enable-cbt), so they run at once.
    assert.ok(needed.length <= REFUSAL_VMS, `the lab has a VM for each of the ${needed.length} cases`);
    const results = await Promise.all(needed.map(async (p, i) => {
      const vm = `lab-vm-${i + 2}`;
      const args = await user(`backup-${i}`, without(needed, p));
      // Data to read through /folder, whatever the lab's pattern left on this disk.
      await lab.write(vm, 2000, 0, Buffer.from(`${vm}: data to back up`));
      return { p, i, vm, r: await vmbkp(['backup', '--repo', repo, ...args, '--vm', vm, '--enable-cbt']) };
    }));
    const counts = await generations();
    for (const { p, i, vm, r } of results) {
      if (p.startsWith('Datastore.')) {
        // /folder's 403 does not say which privilege: the message names both it needs.
        refused(r, `backup-${i}`, p, /HTTP 403.*Datastore\.Browse and Datastore\.FileManagement on datastore LocalDS_0/);
      } else {
        refused(r, `backup-${i}`, p, new RegExp(`on VirtualMachine ${vm} \\(vm-\\d+\\)`));
      }
      assert.equal(counts.get(vm) ?? 0, 0, `no generation without ${p}`);
      if (p === 'VirtualMachine.State.RemoveSnapshot') {
        // The snapshot that started CBT could not be removed: it stays for the next run, which says so.
        assert.match(r.stderr, /the next vmbkp run on this VM removes it/);
        assert.equal((await lab.vm(vm)).snapshots.length, 1);
      } else {
        assert.deepEqual((await lab.vm(vm)).snapshots, [], `no snapshot left without ${p}`);
      }
    }
  });

  it("a role with exactly the README's restore privileges restores a new VM; missing any one gets exit 7 naming it", async () => {
    const needed = await readmePrivileges('restore');
    const ok = await user('restore', needed);
    const r = await vmbkp(['restore', '--repo', repo, ...ok, '--set', VM, '--name', 'restored-ok']);
    assert.equal(r.code, 0, r.stderr);
    // One user per case, so the refusals run at once (each its own VM name).
    const results = await Promise.all(needed.map(async (p, i) => {
      const name = `refused-${i}`;
      const args = await user(`restore-${i}`, without(needed, p));
      return { p, i, r: await vmbkp(['restore', '--repo', repo, ...args, '--set', VM, '--name', name]) };
    }));
    for (const { p, i, r: res } of results) {
      if (p.startsWith('Datastore.') && p !== 'Datastore.AllocateSpace') {
        refused(res, `restore-${i}`, p, /HTTP 403.*Datastore\.Browse and Datastore\.FileManagement on datastore LocalDS_0/);
      } else {
        refused(res, `restore-${i}`, p, / on \w+ .+ \([\w/@.-]+\)/);
      }
    }
  });

  it("a role with exactly the README's restore --overwrite privileges overwrites a VM's disks", async () => {
    const args = await user('overwrite', await readmePrivileges('restore --overwrite'));
    await lab.power(VM, 'off');
    const r = await vmbkp(['restore', '--repo', repo, ...args, '--set', VM, '--name', VM, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
  });
});
