/**
 * A periodic full read against CBT that loses a write (issue 12 case 6). The lab's
 * `cbt-lose` fault changes the disk without recording the write for change tracking, as
 * ESXi did in VMware KB 2090639 and KB 317933. A plain incr then misses the write (its
 * restore differs from the disk: the lab models the loss); with --diff-every 3 the third
 * backup after the full read is a diff that still asks CBT, finds the one 64 KiB chunk CBT
 * did not report, warns with its size, records it, and restores exactly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256File, vmbkp } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';
import { openTestRepository } from './repo-internals.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const VM = 'lab-vm-1';
const DISK = 2000;

interface DiskJson { name: string; mode: string; note?: string; cbtMissedBytes?: number }
interface VmBackupJson { vms: { vm: string; ok: boolean; warnings: string[]; disks?: DiskJson[]; generation?: { generation: number; disks: DiskJson[] } }[] }
interface StoredDisk { name: string; mode: string; note?: string; cbtMissedBytes?: number; incrsSinceFullRead?: number }

describe('--diff-every: a periodic full read finds what CBT lost', () => {
  let lab: Lab;
  let dir: string;
  let pw: string;
  let fixture: LabRepository | undefined;
  /** Plain incrs, and --diff-every 3: both with 64 KiB chunks, the lab's grain. */
  let plain: string;
  let periodic: string;

  before(async () => {
    fixture = await startLabRepository(['--vms', '1', '--disks', '1', '--disk-size', String(8 * MiB)]);
    ({ lab, dir, pw } = fixture);
    plain = path.join(dir, 'plain');
    periodic = path.join(dir, 'periodic');
    for (const repo of [plain, periodic]) {
      const r = await vmbkp(['init', '--repo', repo, '--chunk-size', '64K']);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => fixture?.stop());

  async function backup(repo: string, ...args: string[]): Promise<{ json: VmBackupJson; stderr: string }> {
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', VM, '--enable-cbt', '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return { json: JSON.parse(r.stdout) as VmBackupJson, stderr: r.stderr };
  }
  const disk = (j: VmBackupJson): DiskJson => j.vms[0]!.generation!.disks[0]!;

  /** The disk's record as the generation's manifest stores it. */
  async function stored(repo: string, generation: number): Promise<StoredDisk> {
    const r = await openTestRepository(repo);
    return (await r.readGeneration(VM, generation)).disks[0]!;
  }

  async function restoredSha(repo: string, generation: number): Promise<string> {
    const out = path.join(dir, `restored-${path.basename(repo)}-${generation}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', VM, '--generation', String(generation), '--disk', String(DISK), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  it('a lost write: a plain incr misses it; the third backup with --diff-every 3 is a diff that reports it and restores exactly', async () => {
    assert.equal(disk((await backup(plain)).json).mode, 'full');
    assert.equal(disk((await backup(periodic, '--diff-every', '3')).json).mode, 'full');

    await lab.write(VM, DISK, 1 * MiB, randomBytes(64 * KiB));
    const second = await backup(periodic, '--diff-every', '3');
    assert.equal(disk(second.json).mode, 'incr');

    // The guest writes one grain; CBT does not record it.
    await lab.fault('cbt-lose', { vm: VM, times: 1 });
    await lab.write(VM, DISK, 3 * MiB, randomBytes(64 * KiB));
    const guest = await lab.sha256(VM, DISK);

    const third = await backup(periodic, '--diff-every', '3');
    assert.equal(disk(third.json).mode, 'incr', 'two incrs since the full read: the third backup is still an incr');
    const plainIncr = await backup(plain);
    assert.equal(disk(plainIncr.json).mode, 'incr');
    assert.notEqual(await restoredSha(plain, 2), guest, 'the incr missed the lost write: the lab models the loss');
    assert.notEqual(await restoredSha(periodic, 3), guest);

    // A recorded write too, which CBT does report: not counted as missed.
    await lab.write(VM, DISK, 5 * MiB, randomBytes(64 * KiB));
    const now = await lab.sha256(VM, DISK);
    const fourth = await backup(periodic, '--diff-every', '3');
    const d = disk(fourth.json);
    assert.equal(d.mode, 'diff', 'the third backup after the full read reads everything');
    assert.match(d.note ?? '', /periodic full read \(--diff-every 3\): 2 incr backups since the last full read/);
    assert.equal(d.cbtMissedBytes, 64 * KiB, 'exactly the lost grain');
    assert.match(fourth.stderr, /disk 2000 of set lab-vm-1: the periodic full read found 65536 bytes changed since generation 3 that the change tracking did not report/);
    assert.equal(await restoredSha(periodic, 4), now, 'the diff restores exactly');

    // Stored: the counter and the finding; the first three were full, incr, incr.
    assert.deepEqual((await Promise.all([1, 2, 3, 4].map((g) => stored(periodic, g)))).map((s) => [s.mode, s.incrsSinceFullRead, s.cbtMissedBytes]),
      [['full', 0, undefined], ['incr', 1, undefined], ['incr', 2, undefined], ['diff', 0, 64 * KiB]]);

    // The count starts over: the next backup is an incr again, and CBT missing nothing shows as 0.
    await lab.write(VM, DISK, 6 * MiB, randomBytes(64 * KiB));
    assert.equal(disk((await backup(periodic, '--diff-every', '3')).json).mode, 'incr');
    assert.equal(disk((await backup(periodic, '--diff-every', '1')).json).cbtMissedBytes, 0);

    // A recipe's policy.diffEvery does the same, and its JSON report carries the finding.
    await lab.fault('cbt-lose', { vm: VM, times: 1 });
    await lab.write(VM, DISK, 7 * MiB, randomBytes(64 * KiB));
    const file = path.join(dir, 'recipe.yaml');
    const report = path.join(dir, 'report.json');
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${periodic}`, 'report:', `  json: ${report}`,
      'targets:', `  vms: [${VM}]`, 'policy:', '  diffEvery: 1',
    ].join('\n'));
    // The dry run predicts it.
    const dry = await vmbkp(['run', file, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = (JSON.parse(dry.stdout) as { vms: { disks: { mode: string; why?: string }[] }[] }).vms[0]!.disks[0]!;
    assert.equal(planned.mode, 'diff');
    assert.match(planned.why ?? '', /periodic full read \(--diff-every 1\)/);
    const run = await vmbkp(['run', file]);
    assert.equal(run.code, 0, run.stderr);
    const vm = (JSON.parse(await fs.readFile(report, 'utf8')) as VmBackupJson).vms[0]!;
    assert.deepEqual(vm.disks!.map((d) => [d.mode, d.cbtMissedBytes]), [['diff', 64 * KiB]]);
    assert.ok(vm.warnings.some((w) => /the periodic full read found 65536 bytes changed/.test(w)), vm.warnings.join('\n'));
    assert.equal(await restoredSha(periodic, 7), await lab.sha256(VM, DISK));
  });
});
