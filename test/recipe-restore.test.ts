/**
 * `vmbkp run` of a restore recipe against the lab: the restores it lists are done one
 * after the other on one session; one that is refused does not stop the others, the exit
 * code says partial failure, and the report names it. --dry-run creates nothing.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oneLine, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const MiB = 1024 * 1024;

interface RestoreReport {
  kind: string; ok: boolean; succeeded: number; failed: number;
  restores: { name: string; set: string; ok: boolean; result?: { generation: number; poweredOn: boolean; moref: string }; error?: { code: string; message: string } }[];
}

describe('vmbkp run: restore recipes against the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  const shas = new Map<number, string[]>(); // generation -> sha256 of disks 2000, 2001 at backup time

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '2', '--disks', '2', '--disk-size', String(16 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    for (let g = 1; g <= 2; g++) {
      const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'lab-vm-1']);
      assert.equal(r.code, 0, r.stderr);
      shas.set(g, [await lab.sha256('lab-vm-1', 2000), await lab.sha256('lab-vm-1', 2001)]);
      await lab.write('lab-vm-1', 2000, 5 * MiB, Buffer.alloc(64 * 1024, g + 1));
    }
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  async function recipe(restores: string): Promise<{ file: string; report: string }> {
    const file = path.join(dir, `restore-${Date.now()}.yaml`);
    const report = `${file}.report.json`;
    await fs.writeFile(file, [
      'version: 1', 'kind: restore',
      'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`, `  thumbprint: "${lab.info.thumbprintSha256}"`,
      `repository: ${repo}`,
      'report:', `  json: ${report}`,
      'restores:', restores,
    ].join('\n'));
    return { file, report };
  }

  const restoresYaml = [
    '  - { set: lab-vm-1, generation: 1, name: copy-g1, network: { "VM Network": backup-net } }',
    '  - { set: lab-vm-1, generation: latest, name: lab-vm-2 }',
    '  - { set: lab-vm-1, generation: latest, name: copy-latest, powerOn: true }',
  ].join('\n');

  it('--dry-run says what each restore would do, and creates nothing', async () => {
    const r = await recipe(restoresYaml);
    const before = (await lab.vms()).map((v) => v.name).sort();
    const run = await vmbkp(['run', r.file, '--dry-run']);
    assert.equal(run.code, 3, run.stderr);
    assert.match(oneLine(run.stderr), /^vmbkp: error: recipe \S+: 1 of 3 restores cannot be done: lab-vm-2 \(a VM named lab-vm-2 exists/);
    assert.match(run.stdout, /copy-g1\s+lab-vm-1\s+1\s+would be created/);
    assert.match(run.stdout, /copy-latest\s+lab-vm-1\s+2\s+would be created/);
    assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), before);
  });

  it('restores each VM; a taken name fails only that restore (exit 3), and the report names it', async () => {
    const r = await recipe(restoresYaml);
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(oneLine(run.stderr.split('\n').filter((l) => l.startsWith('vmbkp: error:')).join('\n')),
      /^vmbkp: error: recipe \S+: 1 of 3 restores failed: lab-vm-2 \(restoring set lab-vm-1 generation 2 as VM lab-vm-2 refused: a VM of that name exists/);
    const report = JSON.parse(await fs.readFile(r.report, 'utf8')) as RestoreReport;
    assert.equal(report.kind, 'restore');
    assert.deepEqual(report.restores.map((x) => [x.name, x.ok]), [['copy-g1', true], ['lab-vm-2', false], ['copy-latest', true]]);
    assert.equal(report.restores[1]!.error!.code, 'ALREADY_EXISTS');

    const g1 = await lab.vm('copy-g1');
    assert.deepEqual([await lab.sha256('copy-g1', g1.disks[0]!.key), await lab.sha256('copy-g1', g1.disks[1]!.key)], shas.get(1));
    assert.deepEqual(g1.nics.map((n) => n.network), ['backup-net', 'backup-net']);
    assert.equal(g1.powerState, 'poweredOff');
    const latest = await lab.vm('copy-latest');
    assert.deepEqual([await lab.sha256('copy-latest', latest.disks[0]!.key), await lab.sha256('copy-latest', latest.disks[1]!.key)], shas.get(2));
    assert.equal(latest.powerState, 'poweredOn');
    assert.ok(!run.stdout.includes(lab.info.password) && !run.stderr.includes(lab.info.password));
  });

  it('a restore recipe with a misspelt key is refused before anything runs', async () => {
    const r = await recipe('  - { set: lab-vm-1, generation: 1, name: x, powerOn: true, keepIdentiy: true }');
    const before = (await lab.vms()).map((v) => v.name).sort();
    const run = await vmbkp(['run', r.file]);
    assert.equal(run.code, 2);
    assert.match(oneLine(run.stderr), /^vmbkp: error: recipe \S+: line \d+: .*keepIdentiy/);
    assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), before);
  });
});
