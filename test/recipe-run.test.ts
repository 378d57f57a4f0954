/**
 * `vmbkp run RECIPE` against the lab: a batch of VMs in parallel within the recipe's
 * limits (VMs at once, snapshots open at once, disks per VM, bandwidth), hooks around
 * each VM, one VM's failure not stopping the others, retention after success, and
 * malformed recipes refused before anything runs.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { oneLine, sha256File, tempDir, treeDigest, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const MiB = 1024 * 1024;
const VMS = ['lab-vm-1', 'lab-vm-2', 'lab-vm-3', 'lab-vm-4', 'lab-vm-5', 'lab-vm-6'];

interface VmResult {
  vm: string; moref?: string; set: string; ok: boolean; generation?: number;
  disks?: { name: string; mode: string; bytesRead: number }[];
  skippedDisks?: { name: string; reason: string }[];
  error?: { code: string; message: string };
  hooks: { phase: string; command: string; exitCode: number | null; output: string }[];
}
interface Report {
  ok: boolean; succeeded: number; failed: number; durationMs: number; vms: VmResult[];
  retention: { set: string; keep?: number[]; remove?: number[] }[];
  transferred: { bytes: number; bytesPerSecond: number; limit?: number };
}

describe('vmbkp run: backup recipes against the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  let n = 0;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '6', '--disks', '2', '--disk-size', String(16 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });
  beforeEach(async () => {
    await lab.clearFaults();
    await lab.resetStats();
  });

  /** A recipe file for the lab; `body` is YAML appended after connection and repository. */
  async function recipe(body: string, opts: { repository?: string; passwordEnv?: string } = {}): Promise<{ file: string; report: string }> {
    n++;
    const file = path.join(dir, `recipe-${n}.yaml`);
    const report = path.join(dir, `report-${n}.json`);
    await fs.writeFile(file, [
      'version: 1',
      'kind: backup',
      'connection:',
      `  vcenter: ${lab.info.url}`,
      `  user: ${lab.info.user}`,
      opts.passwordEnv ? `  passwordEnv: ${opts.passwordEnv}` : `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`,
      `repository: ${opts.repository ?? repo}`,
      'report:',
      `  json: ${report}`,
      body,
    ].join('\n'));
    return { file, report };
  }

  async function readReport(file: string): Promise<Report> {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Report;
  }

  it('--dry-run shows each disk\'s mode and changes nothing', async () => {
    // Its own repository, where lab-vm-1 has one generation taken with CBT on.
    const repo2 = path.join(dir, 'repo-dry-run');
    assert.equal((await vmbkp(['init', '--repo', repo2])).code, 0);
    const first = await vmbkp(['backup', '--repo', repo2, ...lab.vcenterArgs(pw), '--vm', 'lab-vm-1', '--enable-cbt']);
    assert.equal(first.code, 0, first.stderr);
    await lab.resetStats();
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-1", "lab-vm-6", "no-such-vm"]',
      '  excludeDisks:',
      '    lab-vm-6: [2001]',
      'policy:',
      '  enableCbt: true',
    ].join('\n'), { repository: repo2 });
    assert.equal((await lab.vm('lab-vm-6')).cbt, false);
    const repoBefore = await treeDigest(repo2);
    const run = await vmbkp(['run', r.file, '--dry-run', '--json']);
    assert.equal(run.code, 3, run.stderr);
    assert.match(oneLine(run.stderr), /^vmbkp: error: recipe \S+: 1 of 3 targets cannot be backed up: no-such-vm \(VM "no-such-vm" does not exist on [\d.:]+\)$/);
    const plan = JSON.parse(run.stdout) as { vms: { vm: string; generation?: number; cbt?: string; disks?: { key: number; mode?: string; skipped?: boolean; why?: string }[]; error?: string }[] };
    const one = plan.vms.find((v) => v.vm === 'lab-vm-1')!;
    assert.equal(one.generation, 2);
    assert.deepEqual(one.disks!.map((d) => d.mode), ['incr', 'incr']);
    const six = plan.vms.find((v) => v.vm === 'lab-vm-6')!;
    assert.equal(six.cbt, 'would be enabled');
    assert.deepEqual(six.disks!.map((d) => [d.key, d.skipped ? 'skip' : d.mode]), [[2000, 'full'], [2001, 'skip']]);
    assert.match(plan.vms.find((v) => v.vm === 'no-such-vm')!.error!, /does not exist/);

    assert.deepEqual(await treeDigest(repo2), repoBefore, 'the repository is untouched');
    const stats = await lab.stats();
    assert.equal(stats.maxVmbkpSnapshots, 0, 'no snapshot was taken');
    assert.equal(stats.folderBytesServed, 0, 'no disk was read');
    assert.equal((await lab.vm('lab-vm-6')).cbt, false, 'CBT was not switched on');
  });

  it('6 VMs, 3 at once: all backed up, never more than 3 snapshots, disks of a VM read in parallel', async () => {
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-*"]',
      'policy:',
      '  enableCbt: true',
      'concurrency:',
      '  vms: 3',
      '  disksPerVm: 2',
    ].join('\n'));
    // Small lab disks read in a blink; the gate makes parallel reads overlap however fast they are.
    await lab.gateFolder(2);
    const run = await vmbkp(['run', r.file]).finally(() => lab.ungateFolder());
    assert.equal(run.code, 0, run.stderr);
    const report = await readReport(r.report);
    assert.equal(report.ok, true);
    assert.deepEqual(report.vms.map((v) => v.vm).sort(), VMS);
    assert.ok(report.vms.every((v) => v.ok && v.generation === 1 && v.disks?.length === 2), JSON.stringify(report.vms));
    assert.match(run.stdout, /6 of 6 VMs backed up/);

    const stats = await lab.stats();
    assert.ok(stats.maxVmbkpSnapshots <= 3, `at most 3 snapshots at once, saw ${stats.maxVmbkpSnapshots}`);
    assert.ok(stats.maxVmbkpSnapshots >= 2, `VMs ran in parallel, saw ${stats.maxVmbkpSnapshots} snapshots at most`);
    assert.equal(stats.maxDisksReadAtOnce, 2, 'the two disks of a VM were read at the same time');
    assert.equal(stats.vmbkpSnapshotsNow, 0);
    // What was read is what the lab served.
    assert.equal(report.transferred.bytes, stats.folderBytesServed);

    // The parallel disks were stored correctly: a restored disk equals the lab's.
    const out = path.join(dir, 'restored-3-2001.img');
    const restore = await vmbkp(['restore', '--repo', repo, '--set', 'lab-vm-3', '--generation', 'latest', '--disk', '2001', '--to', `file:${out}`]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(await sha256File(out), await lab.sha256('lab-vm-3', 2001));
    const verify = await vmbkp(['verify', '--repo', repo, '--read-data']);
    assert.equal(verify.code, 0, verify.stderr);
  });

  it('the snapshot cap and one disk at a time are honoured', async () => {
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-*"]',
      'policy:',
      '  mode: full',
      'concurrency:',
      '  vms: 3',
      '  snapshots: 1',
      '  disksPerVm: 1',
    ].join('\n'));
    // The gate would make two reads of a VM overlap if they were ever in flight together.
    await lab.gateFolder(2, 500);
    const run = await vmbkp(['run', r.file]).finally(() => lab.ungateFolder());
    assert.equal(run.code, 0, run.stderr);
    const stats = await lab.stats();
    assert.equal(stats.maxVmbkpSnapshots, 1);
    assert.equal(stats.maxDisksReadAtOnce, 1);
  });

  // Only the upper bound is asserted: a loaded machine makes a run slower, never faster, so a
  // lower bound on wall time flakes. How closely the limiter tracks its rate is tested on a
  // virtual clock (rate-limit.test.ts); the achieved figure is printed for the record.
  it('a bandwidth limit low enough to dominate: bytes transferred / wall time never above it (+10 %)', async () => {
    const limit = 4 * MiB;
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-1", "lab-vm-2", "lab-vm-3", "lab-vm-4"]',
      'policy:',
      '  mode: full',
      'concurrency:',
      '  vms: 2',
      '  disksPerVm: 2',
      'bandwidth: 4MiB/s',
    ].join('\n'));
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 0, run.stderr);
    const report = await readReport(r.report);
    const stats = await lab.stats();
    assert.equal(report.transferred.bytes, stats.folderBytesServed);
    assert.ok(report.transferred.bytes > 6 * limit, `enough data to measure: ${report.transferred.bytes} bytes`);
    const achieved = report.transferred.bytes / (report.durationMs / 1000);
    process.stderr.write(`bandwidth: achieved ${(achieved / MiB).toFixed(3)} MiB/s of 4 MiB/s\n`);
    assert.ok(achieved / limit <= 1.10, `achieved ${(achieved / MiB).toFixed(2)} MiB/s against a limit of 4 MiB/s`);
  });

  it('one VM with a snapshot fault: the others succeed, exit code 3, the report names the VM and the cause', async () => {
    await lab.fault('create-snapshot', { vm: 'lab-vm-2' });
    const before = (await lab.vm('lab-vm-2')).snapshots.length;
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-1", "lab-vm-2", "lab-vm-3"]',
      'concurrency:',
      '  vms: 3',
    ].join('\n'));
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(oneLine(run.stderr.split('\n').filter((l) => l.startsWith('vmbkp: error:')).join('\n')),
      /^vmbkp: error: recipe \S+: 1 of 3 VMs failed: lab-vm-2 \(creating snapshot vmbkp-\S+ of VM lab-vm-2 failed: .*injected/);
    const report = await readReport(r.report);
    assert.equal(report.succeeded, 2);
    assert.equal(report.failed, 1);
    const failed = report.vms.find((v) => v.vm === 'lab-vm-2')!;
    assert.equal(failed.ok, false);
    assert.match(failed.error!.message, /creating snapshot vmbkp-\S+ of VM lab-vm-2 failed: .*injected/);
    assert.ok(report.vms.filter((v) => v.vm !== 'lab-vm-2').every((v) => v.ok));
    assert.match(run.stdout, /lab-vm-2\s+FAILED/);
    assert.equal((await lab.vm('lab-vm-2')).snapshots.length, before);
    assert.deepEqual(await lab.vmbkpSnapshots('lab-vm-2'), []);
    assert.equal((await vmbkp(['verify', '--repo', repo])).code, 0);
  });

  it('hooks run around each VM with its name and result; a failing pre hook fails only that VM', async () => {
    const log = path.join(dir, 'hooks.log');
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-5", "lab-vm-6"]',
      'hooks:',
      '  pre:',
      '    - \'test "$VMBKP_VM" != lab-vm-6 || { echo "database not ready"; exit 4; }\'',
      '  post:',
      `    - ["/bin/sh", "-c", "echo \\"$VMBKP_PHASE $VMBKP_VM $VMBKP_SET $VMBKP_RESULT $VMBKP_GENERATION\\" >> ${log}"]`,
    ].join('\n'));
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 3, run.stderr);
    const report = await readReport(r.report);
    const five = report.vms.find((v) => v.vm === 'lab-vm-5')!;
    const six = report.vms.find((v) => v.vm === 'lab-vm-6')!;
    assert.equal(five.ok, true);
    assert.equal(six.ok, false);
    assert.equal(six.error!.code, 'HOOK_FAILED');
    assert.match(six.error!.message, /pre hook .* for VM lab-vm-6 exited with status 4: database not ready/);
    assert.equal(six.generation, undefined, 'a VM whose pre hook failed is not backed up');
    const lines = (await fs.readFile(log, 'utf8')).trim().split('\n').sort();
    assert.deepEqual(lines, [`post lab-vm-5 lab-vm-5 success ${five.generation}`, 'post lab-vm-6 lab-vm-6 failure']);
  });

  it('a hook past hooks.timeoutSeconds is stopped, with its children, and fails its VM', async () => {
    const marker = path.join(dir, 'hook-child-alive');
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-5"]',
      'hooks:',
      '  timeoutSeconds: 1',
      `  pre: ['sleep 3; touch ${marker}']`,
    ].join('\n'));
    const started = Date.now();
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 1, run.stderr);
    const report = await readReport(r.report);
    assert.equal(report.vms[0]!.error!.code, 'HOOK_FAILED');
    assert.match(report.vms[0]!.error!.message, /^pre hook "sleep 3; touch \S+" for VM lab-vm-5 timed out after 1 s and was stopped$/);
    assert.equal(report.vms[0]!.generation, undefined);
    assert.equal((await lab.stats()).maxVmbkpSnapshots, 0, 'the VM was not backed up');
    // The shell's child (sleep) was stopped too: past the time it would have touched the
    // marker, there is none.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + 4500 - Date.now())));
    await assert.rejects(fs.stat(marker));
  });

  it('retention after a successful run keeps exactly what the policy says', async () => {
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-4"]',
      'policy:',
      '  retention:',
      '    keepLast: 2',
    ].join('\n'));
    const generations = async () => {
      const l = await vmbkp(['list', '--repo', repo, '--set', 'lab-vm-4', '--json']);
      assert.equal(l.code, 0, l.stderr);
      const sets = (JSON.parse(l.stdout) as { sets: { generations: { generation: number }[] }[] }).sets;
      return sets.flatMap((s) => s.generations.map((g) => g.generation));
    };
    for (let i = 0; i < 3; i++) assert.equal((await vmbkp(['run', r.file])).code, 0);
    const all = await generations();
    const newest = Math.max(...all);
    assert.deepEqual(all.sort((a, b) => a - b), [newest - 1, newest]);
    const report = await readReport(r.report);
    assert.deepEqual(report.retention, [{ set: 'lab-vm-4', keep: [newest, newest - 1], remove: [newest - 2] }]);
    assert.equal((await vmbkp(['verify', '--repo', repo, '--read-data'])).code, 0);
  });

  describe('malformed recipes: an error naming the field, and nothing runs', () => {
    const cases: [string, string, RegExp][] = [
      ['an unknown key', 'targets:\n  vms: [lab-vm-1]\nconcurency:\n  vms: 2', /line \d+: .*concurency/],
      ['a wrong type', 'targets:\n  vms: [lab-vm-1]\nconcurrency:\n  vms: three', /line \d+: concurrency\.vms: .*number/],
      ['bad bandwidth syntax', 'targets:\n  vms: [lab-vm-1]\nbandwidth: 200 MB per second', /line \d+: bandwidth: /],
    ];
    for (const [what, body, message] of cases) {
      it(what, async () => {
        const r = await recipe(body);
        const repoBefore = await treeDigest(repo);
        const run = await vmbkp(['run', r.file]);
        assert.equal(run.code, 2, run.stderr);
        assert.match(oneLine(run.stderr), new RegExp(`^vmbkp: error: recipe ${r.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${message.source}`));
        assert.deepEqual(await treeDigest(repo), repoBefore);
        assert.equal((await lab.stats()).maxVmbkpSnapshots, 0);
        await assert.rejects(fs.stat(r.report));
      });
    }

    it('a missing repository', async () => {
      const file = path.join(dir, 'no-repo.yaml');
      await fs.writeFile(file, `version: 1\nkind: backup\nconnection:\n  vcenter: ${lab.info.url}\n  user: u\n  passwordFile: ${pw}\ntargets:\n  vms: [lab-vm-1]\n`);
      const run = await vmbkp(['run', file]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(oneLine(run.stderr), /^vmbkp: error: recipe \S+: line 1: .*repository/);
      assert.equal((await lab.stats()).maxVmbkpSnapshots, 0);
    });
  });

  it('the password appears in no output, no report and no hook environment', async () => {
    const dump = path.join(dir, 'hook-env.txt');
    const r = await recipe([
      'targets:',
      '  vms: ["lab-vm-1", "nope"]',
      'hooks:',
      `  post: ['env >> ${dump}']`,
    ].join('\n'), { passwordEnv: 'VMBKP_TEST_VCENTER_PASSWORD' });
    const run = await vmbkp(['run', r.file], { env: { VMBKP_TEST_VCENTER_PASSWORD: lab.info.password } });
    assert.equal(run.code, 3, run.stderr);
    const report = await fs.readFile(r.report, 'utf8');
    const hookEnv = await fs.readFile(dump, 'utf8');
    assert.match(hookEnv, /^VMBKP_VM=lab-vm-1$/m, 'the hook ran with its variables');
    assert.doesNotMatch(hookEnv, /VMBKP_TEST_VCENTER_PASSWORD/);
    for (const text of [run.stdout, run.stderr, report, hookEnv]) assert.ok(!text.includes(lab.info.password));
  });

  it('repository.passwordEnv alone opens an encrypted repository; hooks never see that password', async () => {
    const secret = `repo-${Math.random().toString(36).slice(2)}`;
    const secretFile = path.join(dir, 'own-repo.password');
    await fs.writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
    const own = path.join(dir, 'repo-own-password');
    assert.equal((await vmbkp(['init', '--repo', own], { env: { VMBKP_REPO_PASSWORD_FILE: secretFile } })).code, 0);
    const dump = path.join(dir, 'hook-env-repo.txt');
    const r = await recipe(['targets:', '  vms: ["lab-vm-1"]', 'hooks:', `  pre: ['env >> ${dump}']`].join('\n'),
      { repository: `{ path: "${own}", passwordEnv: VMBKP_TEST_REPO_PASSWORD }` });
    const run = await vmbkp(['run', r.file], { env: { VMBKP_REPO_PASSWORD_FILE: '', VMBKP_TEST_REPO_PASSWORD: secret } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await readReport(r.report)).vms[0]?.generation, 1);
    const hookEnv = await fs.readFile(dump, 'utf8');
    assert.match(hookEnv, /^VMBKP_VM=lab-vm-1$/m, 'the hook ran with its variables');
    assert.doesNotMatch(hookEnv, /VMBKP_TEST_REPO_PASSWORD/);
    for (const text of [run.stdout, run.stderr, await fs.readFile(r.report, 'utf8'), hookEnv]) assert.ok(!text.includes(secret));
    const list = await vmbkp(['list', '--repo', own, '--json'], { env: { VMBKP_REPO_PASSWORD_FILE: secretFile } });
    assert.deepEqual((JSON.parse(list.stdout) as { sets: { name: string }[] }).sets.map((x) => x.name), ['lab-vm-1']);
  });
});
