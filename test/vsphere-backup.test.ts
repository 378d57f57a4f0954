/**
 * Online VM backup against the vSphere lab (govmomi's simulator with real disk files,
 * snapshot freezing and changed-block tracking): full, guest writes during and after the
 * backup, incr from QueryChangedDiskAreas, restores equal to what each snapshot froze.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunResult, sha256File, startVmbkp, tempDir, vmbkp, vmbkpJson } from './helpers.js';
import { Lab } from './lab.js';
import { openTestRepository } from './repo-internals.js';

const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;

interface VmBackupJson {
  vms: { vm: string; ok: boolean; error?: string; generation?: { set: string; generation: number; disks: { name: string; mode: string; size: number; bytesRead: number; note?: string }[] } }[];
}

/** Bytes of whole chunks that cover the given areas (what an incr may read at most). */
function chunkCoverage(areas: { start: number; length: number }[]): number {
  const chunks = new Set<number>();
  for (const a of areas) for (let c = Math.floor(a.start / CHUNK); c * CHUNK < a.start + a.length; c++) chunks.add(c);
  return chunks.size * CHUNK;
}

describe('online VM backup against the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  const vm = 'lab-vm-1';

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '3', '--disks', '2', '--disk-size', String(64 * MiB), '--cbt-page', String(4 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    const init = await vmbkp(['init', '--repo', repo]);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  async function restoreSha(set: string, generation: number | string, disk: number): Promise<string> {
    const out = path.join(dir, `restore-${set}-${generation}-${disk}-${Date.now()}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', String(disk), '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return sha256File(out);
  }

  /**
   * Runs a VM backup that pauses right after its snapshot exists, records what the
   * snapshot froze, lets the guest write meanwhile, then lets the backup finish.
   */
  async function backupWhileGuestWrites(args: string[], writes: { key: number; offset: number; length: number }[]): Promise<{ result: RunResult; frozen: Map<number, string> }> {
    const cli = startVmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--json', ...args],
      { env: { VMBKP_FAILPOINT: 'vm:snapshot-taken:pause' } });
    await cli.stderrMatching(/failpoint vm:snapshot-taken: paused/);
    const info = await lab.vm(vm);
    const snap = info.snapshots.find((s) => s.name.startsWith('vmbkp-'));
    assert.ok(snap, 'the backup has a vmbkp snapshot while it runs');
    const frozen = new Map<number, string>();
    for (const d of info.disks) frozen.set(d.key, await lab.sha256(vm, d.key, snap.moref));
    for (const w of writes) await lab.write(vm, w.key, w.offset, randomBytes(w.length));
    for (const d of info.disks) assert.notEqual(await lab.sha256(vm, d.key), frozen.get(d.key), 'the guest changed the disk during the backup');
    cli.child.kill('SIGUSR2');
    return { result: await cli.done, frozen };
  }

  let disks: number[] = [];

  it('full, guest writes, incr: each generation restores to what its snapshot froze', async () => {
    disks = (await lab.vm(vm)).disks.map((d) => d.key);
    assert.equal(disks.length, 2);

    // Generation 1: CBT gets enabled, everything is read once.
    const during1 = disks.map((key, i) => ({ key, offset: (3 + i) * MiB + 4096, length: 200 * 1024 }));
    const g1 = await backupWhileGuestWrites(['--enable-cbt'], during1);
    assert.equal(g1.result.code, 0, g1.result.stderr);
    const j1 = JSON.parse(g1.result.stdout) as VmBackupJson;
    assert.equal(j1.vms[0]!.ok, true);
    assert.deepEqual(j1.vms[0]!.generation!.disks.map((d) => d.mode), ['full', 'full']);
    for (const key of disks) assert.equal(await restoreSha(vm, 1, key), g1.frozen.get(key), `disk ${key} of generation 1`);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);

    // The guest writes more; generation 2 reads only what CBT reports.
    const after1 = disks.map((key, i) => ({ key, offset: (20 + 7 * i) * MiB + 100, length: 300 * 1024 }));
    for (const w of after1) await lab.write(vm, w.key, w.offset, randomBytes(w.length));
    const during2 = disks.map((key) => ({ key, offset: 40 * MiB, length: 64 * 1024 }));
    const before2 = await lab.stats();
    const g2 = await backupWhileGuestWrites([], during2);
    assert.equal(g2.result.code, 0, g2.result.stderr);
    const after2 = await lab.stats();
    const gen2 = (JSON.parse(g2.result.stdout) as VmBackupJson).vms[0]!.generation!;
    for (const d of gen2.disks) {
      const key = Number(d.name);
      assert.equal(d.mode, 'incr', `disk ${key}: ${d.note ?? ''}`);
      // Changed since generation 1's snapshot: what the guest wrote during backup 1 and after it.
      const changed = [...during1, ...after1].filter((w) => w.key === key).map((w) => ({ start: Math.floor(w.offset / 65536) * 65536, length: w.length + (w.offset % 65536) }));
      assert.ok(d.bytesRead > 0 && d.bytesRead <= chunkCoverage(changed), `disk ${key} read ${d.bytesRead} bytes, CBT reported ${chunkCoverage(changed)}`);
    }
    assert.ok(after2.queryChangedCalls > before2.queryChangedCalls, 'QueryChangedDiskAreas was asked');
    const saved2 = (await vmbkpJson<{ machineDetails?: { savedFiles?: { size: number }[] } }>(['show', '--repo', repo, '--set', vm, '--generation', String(gen2.generation)])).machineDetails?.savedFiles ?? [];
    assert.equal(after2.folderBytesServed - before2.folderBytesServed, gen2.disks.reduce((n, d) => n + d.bytesRead, 0) + saved2.reduce((n, f) => n + f.size, 0),
      'the datastore served only what incr read, and the VM\'s .vmx and nvram');
    for (const key of disks) assert.equal(await restoreSha(vm, 2, key), g2.frozen.get(key), `disk ${key} of generation 2`);
    // Generation 1 still restores to its own snapshot.
    for (const key of disks) assert.equal(await restoreSha(vm, 1, key), g1.frozen.get(key));
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
    const verify = await vmbkp(['verify', '--repo', repo, '--read-data']);
    assert.equal(verify.code, 0, verify.stderr);
  });

  it('stores the VM configuration and an OVF descriptor without disks', async () => {
    // Read as vmbkp reads it: the manifest is sealed in an encrypted repository, under a hidden name.
    const manifest = await (await openTestRepository(repo)).readGeneration(vm, 1) as unknown as { machine: { kind: string; name: string; config: unknown; ovf: string; disks: { key: number }[] } };
    assert.equal(manifest.machine.kind, 'vsphere-vm');
    assert.equal(manifest.machine.name, vm);
    assert.deepEqual(manifest.machine.disks.map((d) => d.key), disks);
    assert.match(JSON.stringify(manifest.machine.config), /VirtualDisk/);
    assert.match(manifest.machine.ovf, /<VirtualHardwareSection>/);
    assert.match(manifest.machine.ovf, /<rasd:ResourceType>10<\/rasd:ResourceType>/, 'NICs are described');
    assert.doesNotMatch(manifest.machine.ovf, /<rasd:ResourceType>17<\/rasd:ResourceType>|<Disk /, 'no disks in the OVF');
  });

  it('a killed run leaves its snapshot; the next run removes it and succeeds', async () => {
    const killed = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm], { env: { VMBKP_FAILPOINT: 'vm:snapshot-taken:kill' } });
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal((await lab.vmbkpSnapshots(vm)).length, 1);
    const next = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm]);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /removing snapshot vmbkp-\S+ of VM lab-vm-1, left by an earlier run/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });

  it('an expired session is logged in again in the middle of a backup', async () => {
    const cli = startVmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--json'], { env: { VMBKP_FAILPOINT: 'vm:snapshot-taken:pause' } });
    await cli.stderrMatching(/paused/);
    await lab.expireSessions();
    cli.child.kill('SIGUSR2');
    const r = await cli.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });
});
