/**
 * How consistent a VM backup is, against the lab: vSphere ignores `quiesce` for a VM
 * without running VMware Tools (the snapshot is taken, unquiesced) and fails the task
 * when the guest cannot quiesce. vmbkp reads what the snapshot is, records it in the
 * generation (crash, quiesced, powered-off), warns under --quiesce and fails the VM under
 * --quiesce=required; `list` shows the consistency and the VM's instance UUID.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generationSummary } from '../src/app/generation-summary.js';
import type { GenerationManifest } from '../src/repository/generation.js';
import { findVm } from '../src/vsphere/inventory.js';
import { retrieveOne } from '../src/vsphere/property-collector.js';
import { textAt } from '../src/vsphere/xml.js';
import { vmbkp, vmbkpJson } from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
const WITH_TOOLS = 'lab-vm-1';
const NO_TOOLS = 'lab-vm-2';
const OTHER = 'lab-vm-3';

interface ListedGeneration {
  set: string; generation: number; consistency?: string;
  machine?: { kind: string; name?: string; instanceUuid?: string };
}
interface ListJson { sets: { name: string; generations: ListedGeneration[] }[] }

describe('backup consistency, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '3', '--disks', '1', '--disk-size', String(8 * MiB)]);
    ({ lab, repo, pw } = fixture);
  });
  after(() => fixture?.stop());

  const backup = (vm: string, ...args: string[]) => vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, ...args]);
  const tools = (vm: string, state: 'running' | 'notRunning' | 'notInstalled') => lab.request('POST', `/vms/${vm}/tools?state=${state}`);
  const generations = async (set: string) =>
    (await vmbkpJson<ListJson>(['list', '--repo', repo, '--set', set])).sets.flatMap((s) => s.generations);
  const newest = async (set: string) => (await generations(set)).at(-1);
  async function instanceUuid(vm: string): Promise<string> {
    const ref = await findVm(fixture!.session, vm);
    const uuid = textAt((await retrieveOne(fixture!.session, ref.ref, ['config'])).get('config'), 'instanceUuid');
    assert.ok(uuid, `${vm} has an instance UUID`);
    return uuid;
  }

  it('a VM with Tools running and --quiesce: a quiesced generation; list (text and JSON) shows it and the instance UUID', async () => {
    const r = await backup(WITH_TOOLS, '--quiesce');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /quiesc/, 'no warning about quiescing');
    const uuid = await instanceUuid(WITH_TOOLS);
    const g = await newest(WITH_TOOLS);
    assert.equal(g?.consistency, 'quiesced');
    assert.deepEqual(g?.machine, { kind: 'vsphere-vm', name: WITH_TOOLS, instanceUuid: uuid });

    const text = await vmbkp(['list', '--repo', repo, '--set', WITH_TOOLS]);
    assert.equal(text.code, 0, text.stderr);
    const [header, row] = text.stdout.split('\n');
    assert.match(header!, /consistency\s+instance UUID/);
    assert.match(row!, new RegExp(`^lab-vm-1\\s+1\\s+\\S+ \\S+\\s+auto\\s+quiesced\\s+${uuid}\\s+2000\\b`));
    assert.deepEqual(await lab.vmbkpSnapshots(WITH_TOOLS), []);
  });

  it('without --quiesce the generation is crash-consistent, without a warning', async () => {
    const r = await backup(WITH_TOOLS);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /quiesc/);
    assert.equal((await newest(WITH_TOOLS))?.consistency, 'crash');
  });

  it('a VM without Tools and --quiesce: vSphere ignores the request; the generation is crash-consistent, with a warning', async () => {
    await tools(NO_TOOLS, 'notInstalled');
    const r = await backup(NO_TOOLS, '--quiesce');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /snapshot vmbkp-\S+ of VM lab-vm-2 is not quiesced \(VMware Tools are not running in it \(toolsNotInstalled\)\): this backup is crash-consistent/);
    const g = await newest(NO_TOOLS);
    assert.equal(g?.generation, 1);
    assert.equal(g?.consistency, 'crash');
    const text = await vmbkp(['list', '--repo', repo, '--set', NO_TOOLS]);
    assert.match(text.stdout.split('\n')[1]!, /\sauto\s+crash\s+[0-9a-f-]{36}\s+2000\b/);
  });

  it('--quiesce=required on a VM whose Tools do not run fails that VM: no generation, the snapshot removed', async () => {
    for (const state of ['notInstalled', 'notRunning'] as const) {
      await tools(NO_TOOLS, state);
      const before = (await generations(NO_TOOLS)).length;
      const r = await backup(NO_TOOLS, '--quiesce=required');
      assert.equal(r.code, 1, r.stderr);
      const expected = state === 'notInstalled' ? 'toolsNotInstalled' : 'toolsNotRunning';
      assert.match(r.stderr, new RegExp(`snapshot vmbkp-\\S+ of VM lab-vm-2 is not quiesced \\(VMware Tools are not running in it \\(${expected}\\)\\), and quiescing is required: not backed up`));
      assert.equal((await generations(NO_TOOLS)).length, before, 'no generation was made');
      assert.deepEqual(await lab.vmbkpSnapshots(NO_TOOLS), [], 'the snapshot was removed');
    }
    await tools(NO_TOOLS, 'running');
    const ok = await backup(NO_TOOLS, '--quiesce=required');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await newest(NO_TOOLS))?.consistency, 'quiesced');
  });

  it('a quiesce that fails in the guest: --quiesce takes a crash-consistent snapshot instead, --quiesce=required fails the VM', async () => {
    await lab.fault('quiesce', { vm: WITH_TOOLS });
    const r = await backup(WITH_TOOLS, '--quiesce');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /VM lab-vm-1 could not be quiesced \(creating snapshot vmbkp-\S+ of VM lab-vm-1 failed: ApplicationQuiesceFault: An error occurred while saving the snapshot: Failed to quiesce the virtual machine\.\): taking a crash-consistent snapshot instead/);
    assert.equal((await newest(WITH_TOOLS))?.consistency, 'crash');
    assert.deepEqual(await lab.vmbkpSnapshots(WITH_TOOLS), []);

    const count = (await generations(WITH_TOOLS)).length;
    await lab.fault('quiesce', { vm: WITH_TOOLS });
    const strict = await backup(WITH_TOOLS, '--quiesce=required');
    assert.equal(strict.code, 1, strict.stderr);
    assert.match(strict.stderr, /VM lab-vm-1 could not be quiesced \(creating snapshot vmbkp-\S+ of VM lab-vm-1 failed: ApplicationQuiesceFault: An error occurred while saving the snapshot: Failed to quiesce the virtual machine\.\), and quiescing is required: not backed up/);
    assert.equal((await generations(WITH_TOOLS)).length, count);
    assert.deepEqual(await lab.vmbkpSnapshots(WITH_TOOLS), []);
  });

  it('a powered-off VM has nothing to quiesce: --quiesce=required backs it up, recorded as powered-off', async () => {
    await lab.power(OTHER, 'off');
    const r = await backup(OTHER, '--quiesce=required');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /quiesc/);
    assert.equal((await newest(OTHER))?.consistency, 'powered-off');
  });

  it('a recipe with quiesce: required fails the VM without Tools and backs up the other (exit 3)', async () => {
    await tools(NO_TOOLS, 'notInstalled');
    if ((await lab.vm(OTHER)).powerState !== 'poweredOn') await lab.power(OTHER, 'on');
    const before = (await generations(NO_TOOLS)).length;
    const file = path.join(fixture!.dir, 'quiesce-required.yaml');
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${repo}`, 'targets:', `  vms: [${NO_TOOLS}, ${OTHER}]`,
      'policy:', '  quiesce: required', '',
    ].join('\n'));
    const r = await vmbkp(['run', file]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr + r.stdout, /snapshot vmbkp-\S+ of VM lab-vm-2 is not quiesced \(VMware Tools are not running in it \(toolsNotInstalled\)\), and quiescing is required: not backed up/);
    assert.equal((await generations(NO_TOOLS)).length, before);
    assert.equal((await newest(OTHER))?.consistency, 'quiesced');
    assert.deepEqual(await lab.vmbkpSnapshots(NO_TOOLS), []);
  });

  it('--quiesce takes no value but "required"', async () => {
    const r = await backup(OTHER, '--quiesce=always');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--quiesce "always" is invalid: give --quiesce alone, or --quiesce=required/);
  });
});

describe('generations made before consistency was recorded', () => {
  it('show no consistency, and the machine as far as it was recorded', () => {
    const base = { set: 'web01', generation: 1, id: 'x', started: '2026-01-01T00:00:00.000Z', finished: '2026-01-01T00:00:01.000Z', mode: 'auto', disks: [] };
    const old = generationSummary({ ...base, machine: { kind: 'vsphere-vm', name: 'web01', snapshot: 'vmbkp-x' } } as unknown as GenerationManifest);
    assert.equal('consistency' in old, false);
    assert.deepEqual(old.machine, { kind: 'vsphere-vm', name: 'web01' });
    const plain = generationSummary(base as unknown as GenerationManifest);
    assert.equal('consistency' in plain, false);
    assert.equal('machine' in plain, false);
  });
});
