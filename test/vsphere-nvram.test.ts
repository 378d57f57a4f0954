/**
 * An EFI VM's configuration files, against the vSphere lab (issue 13, case 6): each
 * generation saves the VM's `.vmx` and nvram file (the firmware's settings: EFI boot
 * entries, Secure Boot keys) as blobs that gc keeps, verify checks and copy carries; a
 * restore, as a new VM or with --overwrite, puts the saved nvram back before the VM is
 * powered on, so its firmware settings equal the original's (the file's sha256).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, type RunResult, verifyJson, vmbkp, vmbkpJson } from './helpers.js';
import { type LabRepository, type LabVm, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
const SRC = 'lab-vm-1';

/** The lab's VM as /vms describes it, with where its configuration files are. */
type LabVmFiles = LabVm & { firmware: string; vmx: string; nvram: string };
interface SavedFile { name: string; role: string; size: number; sha256: string }
interface ShowJson { machineDetails?: { savedFiles?: SavedFile[] } }
interface ListJson { sets: { name: string; generations: { generation: number; savedFiles?: string[] }[] }[] }

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('an EFI VM\'s .vmx and nvram against the lab', () => {
  let fx: LabRepository;
  /** The nvram at generation 1's backup. */
  let nvram1: string;

  const vm = async (name: string) => (await fx.lab.vm(name)) as LabVmFiles;
  const fileSha = async (file: string) => sha256(await fs.readFile(file));
  /** The firmware stores new settings (a boot entry added, say): the nvram file changes. */
  const firmwareWrites = async (name: string) => {
    await fx.lab.request('POST', `/vms/${name}/nvram`, randomBytes(128 * 1024));
  };
  const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  const saved = async (repo: string, gen: number) =>
    (await vmbkpJson<ShowJson>(['show', '--repo', repo, '--set', SRC, '--generation', String(gen)])).machineDetails?.savedFiles ?? [];

  before(async () => {
    fx = await startLabRepository(['--vms', '1', '--disks', '1', '--nics', '1', '--disk-size', String(4 * MiB), '--firmware', 'efi']);
  });
  after(async () => {
    await fx?.stop();
  });

  it('saves the .vmx and nvram with each generation; show and list say so; gc keeps them and verify checks them', async () => {
    const src = await vm(SRC);
    assert.equal(src.firmware, 'efi');
    nvram1 = await fileSha(src.nvram);
    ok(await vmbkp(['backup', '--repo', fx.repo, ...fx.lab.vcenterArgs(fx.pw), '--vm', SRC]), 'backup 1');
    const files1 = await saved(fx.repo, 1);
    // The .vmx is read while the snapshot is held (its disks then name the deltas): not the file as it is now.
    assert.deepEqual(files1.map((f) => [f.role, f.name, f.role === 'nvram' ? f.sha256 : '']).sort(),
      [['config', `${SRC}.vmx`, ''], ['nvram', `${SRC}.nvram`, nvram1]]);
    assert.ok(files1.find((f) => f.role === 'config')!.size > 0);
    assert.equal(files1.find((f) => f.role === 'nvram')!.size, 128 * 1024);

    await firmwareWrites(SRC);
    const nvram2 = await fileSha(src.nvram);
    assert.notEqual(nvram2, nvram1);
    ok(await vmbkp(['backup', '--repo', fx.repo, ...fx.lab.vcenterArgs(fx.pw), '--vm', SRC]), 'backup 2');
    assert.equal((await saved(fx.repo, 2)).find((f) => f.role === 'nvram')?.sha256, nvram2, 'generation 2 holds the nvram as it was then');

    const text = await vmbkp(['show', '--repo', fx.repo, '--set', SRC, '--generation', '1']);
    ok(text, 'show');
    assert.match(text.stdout, new RegExp(`^saved file +${SRC}\\.nvram \\(nvram: firmware settings, .*sha256 ${nvram1}\\)$`, 'm'));
    assert.match(text.stdout, new RegExp(`^saved file +${SRC}\\.vmx \\(configuration, `, 'm'));
    const list = await vmbkpJson<ListJson>(['list', '--repo', fx.repo]);
    assert.deepEqual(list.sets[0]!.generations.map((g) => [...(g.savedFiles ?? [])].sort()), [['config', 'nvram'], ['config', 'nvram']]);
    assert.match((await vmbkp(['list', '--repo', fx.repo])).stdout, /\bvmx\+nvram\b|\bnvram\+vmx\b/);

    // The files' blobs are referenced by nothing but the machine record: gc must keep them.
    ok(await vmbkp(['gc', '--repo', fx.repo]), 'gc');
    const { r, report } = await verifyJson(fx.repo, true);
    ok(r, 'verify');
    assert.deepEqual(report.problems, []);
    assert.equal(report.unreferencedBlobs, 0, 'every blob, the files\' included, is referenced');
  });

  it('a restore as a new VM puts generation 1\'s nvram in place before power on: the firmware settings equal the original\'s', async () => {
    ok(await vmbkp(['restore', '--repo', fx.repo, ...fx.lab.vcenterArgs(fx.pw), '--set', SRC, '--generation', '1', '--name', 'efi-restored', '--power-on']), 'restore');
    const r = await vm('efi-restored');
    assert.equal(r.powerState, 'poweredOn');
    assert.equal(r.firmware, 'efi');
    assert.equal(await fileSha(r.nvram), nvram1, 'the restored nvram is generation 1\'s, not the firmware\'s defaults');
    assert.match(await fs.readFile(r.vmx, 'utf8'), new RegExp(`^nvram = "${path.basename(r.nvram)}"$`, 'm'));
  });

  it('restore --overwrite puts the nvram back too', async () => {
    await fx.lab.power(SRC, 'off');
    await firmwareWrites(SRC);
    const src = await vm(SRC);
    assert.notEqual(await fileSha(src.nvram), nvram1);
    ok(await vmbkp(['restore', '--repo', fx.repo, ...fx.lab.vcenterArgs(fx.pw), '--set', SRC, '--generation', '1', '--name', SRC, '--overwrite']), 'restore --overwrite');
    assert.equal(await fileSha(src.nvram), nvram1);
  });

  it('a copy carries the files to another repository, under its own blob ids', async () => {
    const dest = path.join(fx.dir, 'copy');
    ok(await vmbkp(['init', '--repo', dest]), 'init');
    ok(await vmbkp(['copy', '--from-repo', fx.repo, '--repo', dest], { env: { VMBKP_FROM_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE } }), 'copy');
    const { r, report } = await verifyJson(dest);
    ok(r, 'verify of the copy');
    assert.deepEqual(report.problems, []);
    assert.equal(report.unreferencedBlobs, 0);
    ok(await vmbkp(['restore', '--repo', dest, ...fx.lab.vcenterArgs(fx.pw), '--set', SRC, '--generation', '1', '--name', 'efi-from-copy']), 'restore from the copy');
    assert.equal(await fileSha((await vm('efi-from-copy')).nvram), nvram1);
  });
});
