/**
 * VM disks by the names vSphere shows: after two backups of a lab VM with two disks,
 * `restore --disk` takes the label ("Hard disk 1", any case) or the bus position
 * ("scsi0:0") as well as the device key, with a generation selector (latest~1); each
 * restore equals the lab disk's content at that backup. `list` shows label and position
 * beside the key; an unknown disk is one line listing the disks by key, label and position.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oneLine, sha256File, vmbkp } from './helpers.js';
import { type Lab, type LabDisk, type LabRepository, type LabVm, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
const VM = 'lab-vm-1';

/** vSphere's name of a controller's bus, by its type, as the vSphere Client shows positions. */
function busOf(vm: LabVm, d: LabDisk): string {
  const c = vm.controllers.find((x) => x.key === d.controllerKey)!;
  const kind = /IDE/.test(c.type) ? 'ide' : /AHCI/.test(c.type) ? 'sata' : /NVME/.test(c.type) ? 'nvme' : 'scsi';
  return `${kind}${c.busNumber}:${d.unitNumber}`;
}

interface ListJson { sets: { name: string; generations: { generation: number; disks: { name: string; label?: string; bus?: string }[] }[] }[] }

describe('VM disks by label and bus position', () => {
  let lab: Lab;
  let dir: string;
  let repo: string;
  let pw: string;
  let fixture: LabRepository | undefined;
  let vm: LabVm;
  /** The lab's sha256 of each disk (by key) at generation 1 and 2. */
  const at: Map<number, string>[] = [];

  before(async () => {
    fixture = await startLabRepository(['--vms', '1', '--disks', '2', '--disk-size', String(8 * MiB)]);
    ({ lab, dir, repo, pw } = fixture);
    vm = await lab.vm(VM);
    assert.equal(vm.disks.length, 2);
    for (let g = 0; g < 2; g++) {
      for (const d of vm.disks) await lab.write(VM, d.key, (g + 1) * MiB, randomBytes(64 * 1024));
      at.push(new Map(await Promise.all(vm.disks.map(async (d) => [d.key, await lab.sha256(VM, d.key)] as const))));
      const b = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', VM, '--enable-cbt']);
      assert.equal(b.code, 0, b.stderr);
    }
    assert.notEqual(at[0]!.get(vm.disks[0]!.key), at[1]!.get(vm.disks[0]!.key));
  });
  after(() => fixture?.stop());

  /** Restores the disk `disk` names; the report names it by its key. */
  async function restored(disk: string, generation: string, key: number): Promise<string> {
    const out = path.join(dir, `r-${Math.random().toString(16).slice(2)}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', VM, '--generation', generation, '--disk', disk, '--to', `file:${out}`]);
    assert.equal(r.code, 0, `--disk ${disk}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^restored set ${VM} generation \\d+ disk ${key} to `));
    return sha256File(out);
  }

  it('--disk "Hard disk 1" and scsi0:0, with latest~1 and latest, equal the lab disk at that backup', async () => {
    const [first, second] = vm.disks as [LabDisk, LabDisk];
    assert.equal(first.label, 'Hard disk 1');
    assert.equal(busOf(vm, first), 'scsi0:0');
    assert.equal(await restored('Hard disk 1', 'latest~1', first.key), at[0]!.get(first.key));
    assert.equal(await restored('scsi0:0', 'latest', first.key), at[1]!.get(first.key));
    assert.equal(await restored('hard disk 2', '1', second.key), at[0]!.get(second.key));
    assert.equal(await restored(busOf(vm, second), 'latest', second.key), at[1]!.get(second.key));
    assert.equal(await restored(String(second.key), 'latest~1', second.key), at[0]!.get(second.key));
  });

  it('an unknown disk: exit 2, one line listing the disks by key, label and position', async () => {
    const r = await vmbkp(['restore', '--repo', repo, '--set', VM, '--disk', 'Hard disk 3', '--to', `file:${path.join(dir, 'never.img')}`]);
    assert.equal(r.code, 2);
    const listed = vm.disks.map((d) => `${d.key} (${d.label}, ${busOf(vm, d)})`).join(', ');
    assert.equal(oneLine(r.stderr), `vmbkp: error: set ${VM} generation 2 has no disk Hard disk 3 (it has: ${listed})`);
  });

  it('list shows the label and position beside the key, in --json as label and bus', async () => {
    const r = await vmbkp(['list', '--repo', repo, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const disks = (JSON.parse(r.stdout) as ListJson).sets[0]!.generations[1]!.disks;
    assert.deepEqual(disks.map((d) => [d.name, d.label, d.bus]), vm.disks.map((d) => [String(d.key), d.label, busOf(vm, d)]));
    const human = await vmbkp(['list', '--repo', repo]);
    assert.equal(human.code, 0, human.stderr);
    for (const d of vm.disks) assert.match(human.stdout, new RegExp(`\\b${d.key}\\s+${d.label}, ${busOf(vm, d)}\\s`));
  });
});
