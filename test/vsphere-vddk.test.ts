/**
 * The vddk transport, through a stand-in `nbdkit` (vddk-standin.ts) that checks the
 * arguments vmbkp gives the vddk plugin and serves the lab's flat file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { oneLine, sha256File, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';
import { type VddkStandin, installVddkStandin } from './vddk-standin.js';

const MiB = 1024 * 1024;

describe('vddk transport', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  let env: NodeJS.ProcessEnv;
  let standin: VddkStandin;
  const vm = 'lab-vm-1';

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '1', '--disks', '2', '--disk-size', String(32 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    standin = await installVddkStandin(dir, 'standin', lab, 'read');
    env = standin.env;
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  it('backs up each disk through nbdkit vddk; restores equal the disks', async () => {
    const expected = new Map<number, string>();
    for (const d of (await lab.vm(vm)).disks) expected.set(d.key, await lab.sha256(vm, d.key));
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk', '--enable-cbt', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const args = (await standin.calls()).at(-1)!;
    assert.ok(args.includes(`user=${lab.info.user}`) && args.includes('server=127.0.0.1'), args.join(' '));
    assert.ok(args.includes(`file=[${lab.info.datastore}] ${vm}/${vm}_1.vmdk`), args.join(' '));
    for (const [key, sha] of expected) {
      const out = path.join(dir, `r${key}.img`);
      const rr = await vmbkp(['restore', '--repo', repo, '--set', vm, '--generation', '1', '--disk', String(key), '--to', `file:${out}`]);
      assert.equal(rr.code, 0, rr.stderr);
      assert.equal(await sha256File(out), sha);
    }
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
    // The next generation is incr: CBT through the API, data through nbdkit.
    await lab.write(vm, 2000, 3 * MiB, Buffer.alloc(65536, 3));
    const r2 = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk', '--json'], { env });
    assert.equal(r2.code, 0, r2.stderr);
    const disks = (JSON.parse(r2.stdout) as { vms: { generation: { disks: { mode: string; bytesRead: number }[] } }[] }).vms[0]!.generation.disks;
    assert.deepEqual(disks.map((d) => d.mode), ['incr', 'incr']);
    assert.equal(disks[0]!.bytesRead, 256 * 1024);
    assert.equal(disks[1]!.bytesRead, 0);
  });

  it('without nbdkit: a clear error that says what to install; no snapshot left', async () => {
    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty, { recursive: true });
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk'], { env: { PATH: empty } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: nbdkit is not installed, which the vddk transport needs: apt install nbdkit/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });

  it("with Debian's nbdkit, which has no vddk plugin: says so", async (t) => {
    const probe = await promisify(execFile)('nbdkit', ['vddk', '--dump-plugin']).then(() => true, () => false);
    if (probe) { t.skip('this nbdkit has a vddk plugin'); return; }
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: nbdkit's vddk plugin is not installed/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });
});
