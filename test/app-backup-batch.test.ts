/**
 * `backup --vcenter` and `run RECIPE` share one VM backup batch (src/app/backup-vms.ts):
 * against the lab, VMs named on the command line and a recipe's targets come back as the
 * same result record, and what `backup --vcenter --json` prints of a VM is taken from it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BatchEvent, type BatchReport, type VmResult, backupVms } from '../src/app/backup-vms.js';
import { type VcenterLogin, startVcenterJob, vcenterConnection } from '../src/app/vcenter.js';
import { tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';
import { openTestRepository } from './repo-internals.js';

const MiB = 1024 * 1024;

/** The record's shape: its keys, and its disks' keys. */
function shape(r: VmResult): { keys: string[]; disk?: string[] } {
  return { keys: Object.keys(r).sort(), ...(r.disks?.[0] ? { disk: Object.keys(r.disks[0]).sort() } : {}) };
}

describe('one VM backup batch for backup --vcenter and run', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  let login: VcenterLogin;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '2', '--disks', '2', '--disk-size', String(8 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    login = { vcenter: lab.info.url, user: lab.info.user, passwordFile: pw, thumbprint: lab.info.thumbprintSha256 };
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  /** The batch in this process; `done` counts its vm-done events. */
  async function batch(vms: Parameters<typeof backupVms>[0]['vms']): Promise<{ report: BatchReport; done: number }> {
    const job = await startVcenterJob(await vcenterConnection(login), await openTestRepository(repo));
    let done = 0;
    try {
      const report = await backupVms({
        job, vms, policy: { mode: 'auto', quiesce: false, memory: false, enableCbt: false, transport: 'https' },
        onEvent: (e: BatchEvent) => { if (e.type === 'vm-done') done++; },
      });
      return { report, done };
    } finally {
      await job.close();
    }
  }

  it('VMs as named and a recipe\'s targets give the same records, success and failure alike', async () => {
    const named = await batch({ kind: 'named', vms: ['lab-vm-1', 'no-such-vm'] });
    const recipe = await batch({ kind: 'recipe', targets: { vms: ['lab-vm-1', 'no-such-vm'], folders: [], exclude: [], excludeDisks: {} } });
    for (const { report } of [named, recipe]) {
      assert.equal(report.succeeded, 1);
      assert.equal(report.failed, 1);
      assert.deepEqual(report.vms.map((v) => [v.vm, v.ok]), [['lab-vm-1', true], ['no-such-vm', false]]);
    }
    const [n1, nMissing] = named.report.vms as [VmResult, VmResult];
    const [r1, rMissing] = recipe.report.vms as [VmResult, VmResult];
    assert.deepEqual(shape(n1), shape(r1), 'a backed-up VM has one record shape');
    assert.deepEqual(Object.keys(named.report).sort(), Object.keys(recipe.report).sort(), 'one report shape');
    // The named VM got its moref from the backup; the recipe resolved it first: the same VM either way.
    assert.equal(n1.moref, r1.moref);
    assert.equal(n1.set, r1.set);
    assert.deepEqual([n1.generation, r1.generation], [1, 2]);
    assert.deepEqual(n1.disks!.map((d) => [d.name, d.size]), r1.disks!.map((d) => [d.name, d.size]));
    // A VM that is not there fails with the same code and message, whether found at resolution or at backup.
    assert.deepEqual(nMissing.error, rMissing.error);
    assert.equal(nMissing.error!.code, 'NOT_FOUND');
    assert.equal(named.done, 2, 'each named VM ends with the batch\'s vm-done event');
  });

  it('backup --vcenter --json shows the batch\'s record of each VM in its own shape', async () => {
    const cli = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'lab-vm-1', '--vm', 'no-such-vm', '--json']);
    assert.equal(cli.code, 3, cli.stderr);
    const out = JSON.parse(cli.stdout) as { vms: { vm: string; ok: boolean; generation?: { set: string; generation: number; disks: { name: string; mode: string }[] }; error?: string; code?: string }[] };
    const after = await batch({ kind: 'named', vms: ['no-such-vm'] });
    const missing = after.report.vms[0]!;
    assert.deepEqual(out.vms[1], { vm: 'no-such-vm', ok: false, error: missing.error!.message, code: missing.error!.code });
    const made = out.vms[0]!;
    assert.equal(made.ok, true);
    assert.equal(made.generation!.generation, 3);
    // The generation it shows is the one the batch committed.
    const manifest = await (await openTestRepository(repo)).readGeneration(made.generation!.set, 3);
    assert.deepEqual(made.generation!.disks.map((d) => [d.name, d.mode]), manifest.disks.map((d) => [d.name, d.mode]));
  });
});
