/**
 * --dry-run on every command that changes something: each leaves the repository (every
 * file, path and content) and the lab (its VMs, their disks, CBT state and snapshots) as
 * they were, and says what the command then does. prune runs gc unless --no-gc; prune
 * --all takes each set's policy from a recipe or the --keep-* options and leaves a set
 * without one alone; unlock --list shows the locks.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  REPO_PASSWORD_FILE, type RunResult, makeImage, mutateImage, oneLine, sha256File, startVmbkp, tempDir, treeDigest, vmbkp, vmbkpJson,
} from './helpers.js';
import { type Lab, type LabRepository, startLabRepository } from './lab.js';

const MiB = 1024 * 1024;
// copy and init --from-repo open the source with its own password: the tests' repositories share one.
process.env['VMBKP_FROM_REPO_PASSWORD_FILE'] ??= REPO_PASSWORD_FILE;

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  return r;
}

async function json<T>(args: string[]): Promise<T> {
  return vmbkpJson<T>(args);
}

/** Runs `args` and asserts it changed no file under any of `dirs`; returns its JSON. */
async function unchanged<T>(dirs: readonly string[], args: string[]): Promise<T> {
  const before = await Promise.all(dirs.map((d) => treeDigest(d)));
  const r = ok(await vmbkp([...args, '--json']), args.join(' '));
  for (const [i, d] of dirs.entries()) assert.deepEqual(await treeDigest(d), before[i], `${args.join(' ')} changed ${d}`);
  return JSON.parse(r.stdout) as T;
}

interface GcJson { packsRemoved: number; packsRepacked: number; blobsRemoved: number; bytesFreed: number; dryRun: boolean }
interface PruneJson { set: string; remove: number[]; keep: { generation: number }[]; dryRun: boolean; gc?: GcJson }
interface PruneAllJson { sets: PruneJson[]; unmanaged: string[]; gc?: GcJson; dryRun: boolean }
interface LockJson { name: string; kind?: string; operation?: string; host?: string; pid?: number; since?: string; stale: boolean }
interface ListJson { sets: { name: string; generations: { generation: number }[] }[] }

async function generations(repo: string, set: string): Promise<number[]> {
  const l = await json<ListJson>(['list', '--repo', repo, '--set', set]);
  return (l.sets[0]?.generations ?? []).map((g) => g.generation);
}

describe('--dry-run of the repository commands', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const img = (n: string) => path.join(dir, n);
  let seq = 0;

  /** A repository with sets a (three generations of a changing disk) and b (one). */
  async function repoWithSets(): Promise<string> {
    const repo = img(`repo-${++seq}`);
    ok(await vmbkp(['init', '--repo', repo]), 'init');
    for (let n = 0; n < 3; n++) ok(await vmbkp(['backup', '--repo', repo, '--set', 'a', `sda=file:${img(`a${n}.img`)}`]), `backup a${n}`);
    ok(await vmbkp(['backup', '--repo', repo, '--set', 'b', `sda=file:${img('b.img')}`]), 'backup b');
    return repo;
  }

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    await makeImage(img('a0.img'), '8M', 11);
    await mutateImage(img('a0.img'), img('a1.img'), img('a1.json'), 30, 12);
    await mutateImage(img('a1.img'), img('a2.img'), img('a2.json'), 30, 13);
    await makeImage(img('b.img'), '4M', 14);
  });
  after(() => cleanup());

  it('backup --dry-run of file disks: modes and bytes read as the backup then does, nothing written', async () => {
    const repo = await repoWithSets();
    const plan = await unchanged<{ set: string; generation: number; disks: { disk: string; mode: string; bytesToRead: number }[]; bytesToRead: number }>(
      [repo], ['backup', '--repo', repo, '--set', 'a', `sda=file:${img('a2.img')}`, `sdb=file:${img('b.img')}`, '--dry-run']);
    assert.equal(plan.generation, 4);
    assert.deepEqual(plan.disks.map((d) => [d.disk, d.mode]), [['sda', 'diff'], ['sdb', 'full']]);
    const text = ok(await vmbkp(['backup', '--repo', repo, '--set', 'a', `sda=file:${img('a2.img')}`, `sdb=file:${img('b.img')}`, '--dry-run']), 'text');
    assert.match(text.stdout, /^dry run, nothing was changed: set a generation 4 would be backed up, reading /);
    const real = await json<{ generation: number; disks: { name: string; mode: string; bytesRead: number }[] }>(
      ['backup', '--repo', repo, '--set', 'a', `sda=file:${img('a2.img')}`, `sdb=file:${img('b.img')}`]);
    assert.equal(real.generation, plan.generation);
    assert.deepEqual(real.disks.map((d) => [d.name, d.mode, d.bytesRead]), plan.disks.map((d) => [d.disk, d.mode, d.bytesToRead]));
  });

  it('restore --dry-run of a disk: what would be written where, the target untouched; an existing target is refused without --overwrite', async () => {
    const repo = await repoWithSets();
    const target = img(`restored-${seq}.img`);
    const plan = await unchanged<{ size: number; bytesToWriteAtMost: number; target: { exists: boolean; overwritten: boolean } }>(
      [repo], ['restore', '--repo', repo, '--set', 'a', '--disk', 'sda', '--to', `file:${target}`, '--dry-run']);
    assert.deepEqual(plan.target, { uri: `file:${target}`, kind: 'file', exists: false, overwritten: false });
    assert.equal(plan.size, 8 * MiB);
    await assert.rejects(fs.stat(target), 'the dry run created no file');
    const real = await json<{ bytesWritten: number }>(['restore', '--repo', repo, '--set', 'a', '--disk', 'sda', '--to', `file:${target}`]);
    // The chunks holding data: what the restore writes but for runs of zeros inside them, never more.
    assert.ok(real.bytesWritten <= plan.bytesToWriteAtMost && plan.bytesToWriteAtMost < plan.size, `${real.bytesWritten} ≤ ${plan.bytesToWriteAtMost} < ${plan.size}`);

    // Now it exists: refused as the restore would be (exit 2), or, with --overwrite, replaced — and left as it is by the dry run.
    const sha = await sha256File(target);
    const refused = await vmbkp(['restore', '--repo', repo, '--set', 'a', '--generation', '1', '--disk', 'sda', '--to', `file:${target}`, '--dry-run']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stdout, /^target exists: the restore would be refused$/m);
    assert.match(oneLine(refused.stderr), /refused: the file exists \(pass --overwrite to replace it\)$/);
    const over = await unchanged<{ generation: number; target: { exists: boolean; overwritten: boolean; currentSize: number } }>(
      [repo], ['restore', '--repo', repo, '--set', 'a', '--generation', '1', '--disk', 'sda', '--to', `file:${target}`, '--overwrite', '--dry-run']);
    assert.equal(over.generation, 1);
    assert.deepEqual([over.target.exists, over.target.overwritten, over.target.currentSize], [true, true, 8 * MiB]);
    assert.equal(await sha256File(target), sha);
  });

  it('gc --dry-run frees, in its prediction, exactly what gc then frees', async () => {
    const repo = await repoWithSets();
    const p = await json<PruneJson>(['prune', '--repo', repo, '--set', 'a', '--keep-last', '1', '--no-gc']);
    assert.deepEqual(p.remove.sort(), [1, 2]);
    const plan = await unchanged<GcJson>([repo], ['gc', '--repo', repo, '--dry-run']);
    assert.equal(plan.dryRun, true);
    assert.ok(plan.bytesFreed > 0 && plan.packsRemoved > 0, JSON.stringify(plan));
    assert.match(ok(await vmbkp(['gc', '--repo', repo, '--dry-run']), 'gc text').stdout, /^gc would remove \d+ packs, repack \d+, drop \d+ blobs and free .* \(dry run: nothing written or removed\)$/m);
    const real = await json<GcJson>(['gc', '--repo', repo]);
    assert.deepEqual({ ...real, dryRun: true }, { ...plan, uploadsSwept: 0 } as GcJson, 'gc did what its dry run said');
    ok(await vmbkp(['verify', '--repo', repo, '--read-data']), 'verify');
  });

  it('prune --dry-run: the generations prune then removes, and the bytes its gc then frees', async () => {
    const repo = await repoWithSets();
    const plan = await unchanged<PruneJson>([repo], ['prune', '--repo', repo, '--set', 'a', '--keep-last', '1', '--dry-run']);
    assert.deepEqual([plan.dryRun, [...plan.remove].sort()], [true, [1, 2]]);
    assert.ok(plan.gc && plan.gc.dryRun && plan.gc.bytesFreed > 0, JSON.stringify(plan.gc));
    const real = await json<PruneJson>(['prune', '--repo', repo, '--set', 'a', '--keep-last', '1']);
    assert.deepEqual(real.remove, plan.remove);
    assert.deepEqual(await generations(repo, 'a'), [3]);
    assert.ok(real.gc, 'prune ran gc');
    assert.equal(real.gc.bytesFreed, plan.gc.bytesFreed);
    assert.equal(real.gc.packsRemoved, plan.gc.packsRemoved);
    // gc ran: nothing is left for another.
    assert.equal((await json<GcJson>(['gc', '--repo', repo])).bytesFreed, 0);
    ok(await vmbkp(['verify', '--repo', repo, '--read-data']), 'verify');
  });

  it('prune --no-gc removes generations only: the packs stay for gc', async () => {
    const repo = await repoWithSets();
    const data = async () => (await fs.readdir(path.join(repo, 'data'), { recursive: true })).sort();
    const packs = await data();
    const r = ok(await vmbkp(['prune', '--repo', repo, '--set', 'a', '--keep-last', '2', '--no-gc']), 'prune --no-gc');
    assert.match(r.stdout, /^gc not run \(--no-gc\)/m);
    assert.deepEqual(await generations(repo, 'a'), [2, 3]);
    assert.deepEqual(await data(), packs, 'no pack was removed');
    assert.ok((await json<GcJson>(['gc', '--repo', repo])).bytesFreed > 0, 'what the prune left, gc frees');
  });

  it('prune --all: a recipe\'s policy for the sets of its VMs, a set without a policy left alone', async () => {
    const repo = await repoWithSets();
    ok(await vmbkp(['backup', '--repo', repo, '--set', 'b', `sda=file:${img('b.img')}`]), 'b again');
    const recipe = img(`recipe-${seq}.yaml`);
    await fs.writeFile(recipe, [
      'version: 1', 'kind: backup',
      'connection:', '  vcenter: https://vcenter.invalid/sdk', '  user: u', '  passwordFile: /nonexistent',
      `repository: ${repo}`, 'targets:', '  vms: ["a"]', 'policy:', '  retention:', '    keepLast: 2',
    ].join('\n'));
    const plan = await unchanged<PruneAllJson>([repo], ['prune', '--repo', repo, '--all', '--recipe', recipe, '--dry-run']);
    assert.deepEqual(plan.sets.map((s) => [s.set, s.remove]), [['a', [1]]]);
    assert.deepEqual(plan.unmanaged, ['b']);
    const text = ok(await vmbkp(['prune', '--repo', repo, '--all', '--recipe', recipe]), 'prune --all');
    assert.match(text.stdout, /^remove a generation 1$/m);
    assert.match(text.stdout, /^left alone b: no retention policy for it$/m);
    assert.match(text.stdout, /^gc removed /m);
    assert.deepEqual(await generations(repo, 'a'), [2, 3]);
    assert.deepEqual(await generations(repo, 'b'), [1, 2], 'the set without a policy is untouched');

    // --keep-* options: every set.
    const all = await json<PruneAllJson>(['prune', '--repo', repo, '--all', '--keep-last', '1']);
    assert.deepEqual(all.sets.map((s) => [s.set, s.remove]), [['a', [2]], ['b', [1]]]);
    assert.deepEqual(all.unmanaged, []);
    ok(await vmbkp(['verify', '--repo', repo, '--read-data']), 'verify');

    const neither = await vmbkp(['prune', '--repo', repo, '--all']);
    assert.equal(neither.code, 2);
    assert.match(oneLine(neither.stderr), /^vmbkp: error: prune --all needs a policy: --recipe FILE/);
  });

  it('copy --dry-run: the generations, chunks and bytes the copy then sends; neither repository changes', async () => {
    const src = await repoWithSets();
    const dst = img(`copy-dst-${seq}`);
    ok(await vmbkp(['init', '--repo', dst, '--from-repo', src]), 'init --from-repo');
    ok(await vmbkp(['copy', '--from-repo', src, '--repo', dst, '--set', 'a', '--generation', '1']), 'copy a/1');
    interface CopyJson { generations: { set: string; from: number; status: string; chunksSent: number; bytesSent: number }[]; chunksSent: number; bytesSent: number; sameIds: boolean; predicted?: string }
    const plan = await unchanged<CopyJson>([src, dst], ['copy', '--from-repo', src, '--repo', dst, '--dry-run']);
    assert.equal(plan.predicted, 'exact');
    assert.deepEqual(plan.generations.map((g) => [g.set, g.from, g.status]), [['a', 1, 'present'], ['a', 2, 'planned'], ['a', 3, 'planned'], ['b', 1, 'planned']]);
    assert.ok(plan.chunksSent > 0 && plan.bytesSent > 0);
    const real = await json<CopyJson>(['copy', '--from-repo', src, '--repo', dst]);
    assert.equal(real.sameIds, true);
    assert.deepEqual(real.generations.map((g) => [g.set, g.from, g.chunksSent, g.bytesSent]), plan.generations.map((g) => [g.set, g.from, g.chunksSent, g.bytesSent]));
    assert.deepEqual([real.chunksSent, real.bytesSent], [plan.chunksSent, plan.bytesSent]);
  });

  it('unlock --list shows a live lock and then a stale one; unlock --dry-run names what unlock then removes', async () => {
    const repo = await repoWithSets();
    const holder = startVmbkp(['prune', '--repo', repo, '--set', 'a', '--keep-last', '1'], { env: { VMBKP_FAILPOINT: 'prune:locked:pause' } });
    let locks: LockJson[];
    try {
      await holder.stderrMatching(/failpoint prune:locked: paused/);
      locks = (await unchanged<{ locks: LockJson[] }>([repo], ['unlock', '--repo', repo, '--list'])).locks;
      assert.equal(locks.length, 1);
      assert.deepEqual([locks[0]!.kind, locks[0]!.operation, locks[0]!.pid, locks[0]!.stale], ['exclusive', 'prune of a', holder.pid, false]);
      assert.ok(locks[0]!.since && locks[0]!.host);
      const list = ok(await vmbkp(['unlock', '--repo', repo, '--list']), 'list text');
      assert.match(list.stdout, new RegExp(`exclusive +prune of a +pid ${holder.pid} on \\S+ +\\S+ +live`));
      // A live lock is not stale: neither unlock nor its dry run would remove it.
      assert.deepEqual((await unchanged<{ removed: string[] }>([repo], ['unlock', '--repo', repo, '--dry-run'])).removed, []);
    } finally {
      holder.child.kill('SIGKILL');
      await holder.done;
    }
    const stale = (await unchanged<{ locks: LockJson[] }>([repo], ['unlock', '--repo', repo, '--list'])).locks;
    assert.deepEqual(stale.map((l) => [l.name, l.stale]), [[locks[0]!.name, true]]);
    const plan = await unchanged<{ dryRun: boolean; removed: string[] }>([repo], ['unlock', '--repo', repo, '--dry-run']);
    assert.deepEqual(plan, { dryRun: true, removed: [locks[0]!.name], locks: stale });
    const real = await json<{ removed: string[] }>(['unlock', '--repo', repo]);
    assert.deepEqual(real.removed, plan.removed);
    assert.deepEqual((await json<{ locks: LockJson[] }>(['unlock', '--repo', repo, '--list'])).locks, []);
  });
});

describe('--dry-run of the vCenter commands, against the lab', () => {
  let lab: Lab;
  let repo: string;
  let pw: string;
  let fixture: LabRepository | undefined;

  before(async () => {
    fixture = await startLabRepository(['--vms', '2', '--disks', '2', '--disk-size', String(8 * MiB)]);
    ({ lab, repo, pw } = fixture);
  });
  after(() => fixture?.stop());

  /** Runs a dry run and asserts neither the repository nor the lab (VMs, disks, CBT, snapshots, files) changed. */
  async function dryRun<T>(args: string[]): Promise<T> {
    const vmsBefore = await lab.vms();
    const filesBefore = await treeDigest(lab.info.datastoreDir);
    const out = await unchanged<T>([repo], [...args, '--dry-run']);
    assert.deepEqual(await lab.vms(), vmsBefore, `${args[0]} --dry-run changed the lab's VMs`);
    assert.deepEqual(await treeDigest(lab.info.datastoreDir), filesBefore, `${args[0]} --dry-run changed the datastore`);
    return out;
  }

  interface VmPlanJson { vms: { vm: string; generation: number; cbt: string; disks: { key: number; mode: string }[] }[] }

  it('backup --vcenter --dry-run: the plan run --dry-run makes, then the backup takes those modes', async () => {
    const args = ['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'lab-vm-1', '--enable-cbt'];
    const plan = await dryRun<VmPlanJson>(args);
    assert.deepEqual(plan.vms.map((v) => [v.vm, v.generation, v.cbt]), [['lab-vm-1', 1, 'would be enabled']]);
    assert.deepEqual(plan.vms[0]!.disks.map((d) => d.mode), ['full', 'full']);
    assert.equal((await lab.vm('lab-vm-1')).cbt, false, 'CBT is not turned on by the dry run');
    ok(await vmbkp(args), 'backup');
    const second = await dryRun<VmPlanJson>(args);
    assert.deepEqual(second.vms.map((v) => [v.generation, v.cbt, v.disks.map((d) => d.mode)]), [[2, 'on', ['incr', 'incr']]]);
    const real = await json<{ vms: { generation: { generation: number; disks: { mode: string }[] } }[] }>([...args, '--json']);
    assert.deepEqual(real.vms.map((v) => [v.generation.generation, v.generation.disks.map((d) => d.mode)]), [[2, ['incr', 'incr']]]);

    const missing = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'no-such-vm', '--dry-run']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(oneLine(missing.stderr), /^vmbkp: error: VM "no-such-vm" does not exist/);
  });

  interface RestorePlanJson { vm: string; action: string; existing?: string; datastore?: string; disks: { name: string; capacity: number; bytesToWrite: number }[];
    networks: { nic: string; from: string; to: string }[]; bytesToWrite: number; refused?: string }

  it('restore --vcenter --dry-run: the VM that would be made, its disks, networks and datastore; an existing one refused or written over', async () => {
    const base = ['restore', '--repo', repo, ...lab.vcenterArgs(pw), '--set', 'lab-vm-1'];
    const vmsBefore = (await lab.vms()).map((v) => v.name).sort();
    const plan = await dryRun<RestorePlanJson>([...base, '--name', 'restored-dry']);
    assert.equal(plan.action, 'create');
    assert.equal(plan.datastore, lab.info.datastore);
    assert.equal(plan.disks.length, 2);
    assert.ok(plan.disks.every((d) => d.capacity === 8 * MiB && d.bytesToWrite === 8 * MiB), 'https writes whole disks');
    const source = await lab.vm('lab-vm-1');
    assert.deepEqual(plan.networks.map((n) => [n.from, n.to]), source.nics.map((n) => [n.network, n.network]));
    assert.equal(plan.refused, undefined);
    assert.deepEqual((await lab.vms()).map((v) => v.name).sort(), vmsBefore, 'no VM was made');

    // lab-vm-2 exists: without --overwrite refused (exit 2), with it written over once powered off.
    const refused = await vmbkp([...base, '--name', 'lab-vm-2', '--dry-run']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(oneLine(refused.stderr), /^vmbkp: error: the restore would be refused: a VM named lab-vm-2 exists/);
    await lab.power('lab-vm-2', 'off');
    const over = await dryRun<RestorePlanJson>([...base, '--name', 'lab-vm-2', '--overwrite']);
    assert.equal(over.action, 'overwrite');
    assert.equal(over.existing, (await lab.vm('lab-vm-2')).moref);
    assert.equal(over.refused, undefined);
    const real = await json<{ created: boolean; disks: { size: number }[] }>([...base, '--name', 'lab-vm-2', '--overwrite']);
    assert.equal(real.created, false);
    assert.deepEqual(real.disks.map((d) => d.size), over.disks.map((d) => d.capacity));
  });
});
