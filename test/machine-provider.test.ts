/**
 * The jobs are generic over the MachineProvider seam: a second provider (machines whose
 * disks are byte patterns in memory, no hypervisor) backs up through the same batch and
 * job as vSphere. The job ends every backup it begins — after success and after failure —
 * and a failed release after a committed generation fails the job, saying the generation
 * stands.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IoError } from '../src/errors.js';
import { runBackupBatch } from '../src/jobs/backup-batch.js';
import { backupMachine } from '../src/jobs/backup-machine.js';
import type {
  BackupProvider, BeginBackupOptions, MachineBackup, MachineInventory, MachineSurvey, MachineToBackUp,
} from '../src/providers/machine-provider.js';
import { Repository } from '../src/repository/repository.js';
import type { DiskSource, Extent } from '../src/sources/types.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir } from './helpers.js';

const MiB = 1024 * 1024;

/** A disk of `size` bytes whose byte k is (k * seed) & 0xff; a read at or past `failAt` fails. */
class PatternDisk implements DiskSource {
  readonly description: string;
  closed = false;
  constructor(name: string, readonly size: number, private readonly seed: number, private readonly failAt = Infinity) {
    this.description = `pattern:${name}`;
  }
  async allocated(offset: number, length: number): Promise<Extent[]> { return [{ start: offset, length }]; }
  async changedSince(): Promise<{ unknown: string }> { return { unknown: 'pattern disks track nothing' }; }
  async changeToken(): Promise<string | undefined> { return undefined; }
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (offset + length > this.failAt) throw new Error(`${this.description}: read at ${offset} failed`);
    const buf = into ? into.subarray(0, length) : Buffer.alloc(length);
    for (let i = 0; i < length; i++) buf[i] = ((offset + i) * this.seed) & 0xff;
    return buf;
  }
  async close(): Promise<void> { this.closed = true; }
}

/** Machines in memory: each a few pattern disks. Records what the jobs asked of it. */
class MemoryProvider implements BackupProvider, Pick<MachineInventory, 'location' | 'setName'> {
  readonly location = 'memory';
  readonly begun: string[] = [];
  readonly ended: string[] = [];
  readonly disks: PatternDisk[] = [];
  failRelease = false;
  failReadOf?: string;

  constructor(private readonly machines: Record<string, number[]>) {}

  setName(name: string): string { return `mem-${name}`; }

  async prepareBackup(machine: string): Promise<MachineToBackUp> {
    if (!(machine in this.machines)) throw new Error(`no machine ${machine}`);
    return { name: machine, id: `id-${machine}`, set: this.setName(machine) };
  }

  async beginBackup(m: MachineToBackUp, opts: BeginBackupOptions): Promise<MachineBackup> {
    this.begun.push(m.name);
    const disks = this.machines[m.name]!.map((seed, i) => {
      const d = new PatternDisk(`${m.name}-${i}`, 2 * MiB, seed, this.failReadOf === m.name ? MiB : Infinity);
      this.disks.push(d);
      return { name: `d${i}`, source: d as DiskSource };
    });
    return {
      disks,
      record: { kind: 'memory-machine', disks: disks.map((d, i) => ({ name: d.name, key: i, label: d.name, capacity: 2 * MiB })) },
      end: async () => {
        this.ended.push(`${m.name} ${opts.id}`);
        for (const d of disks) await d.source.close();
        if (this.failRelease) throw new IoError(`releasing ${m.name} failed`);
      },
    };
  }

  async survey(): Promise<MachineSurvey> { throw new Error('not used'); }
}

describe('jobs through a second MachineProvider', () => {
  let repo: Repository;
  let cleanup: () => Promise<void>;

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    repo = await Repository.init(new LocalBackend(t.dir), 64 * 1024);
  });
  after(async () => {
    await cleanup?.();
  });

  it('a backup commits a generation with the provider\'s record, and ends what it began', async () => {
    const provider = new MemoryProvider({ a: [3, 5] });
    const { manifest, machine } = await backupMachine({ repo, provider, machine: 'a', mode: 'auto' });
    assert.equal(machine.id, 'id-a');
    assert.equal(manifest.set, 'mem-a');
    assert.deepEqual(manifest.disks.map((d) => [d.name, d.mode, d.size]), [['d0', 'full', 2 * MiB], ['d1', 'full', 2 * MiB]]);
    assert.equal((manifest.machine as { kind: string }).kind, 'memory-machine');
    assert.deepEqual(provider.ended, [`a ${manifest.id}`], 'ended once, named after the generation');
    assert.ok(provider.disks.every((d) => d.closed));
  });

  it('a failed backup still ends what it began, and no generation is committed', async () => {
    const provider = new MemoryProvider({ b: [7] });
    provider.failReadOf = 'b';
    await assert.rejects(backupMachine({ repo, provider, machine: 'b', mode: 'full' }), /pattern:b-0: read at \d+ failed/);
    assert.equal(provider.ended.length, 1);
    assert.deepEqual(await repo.listGenerations('mem-b'), []);
  });

  it('a release that fails after the commit fails the job, saying the generation stands', async () => {
    const provider = new MemoryProvider({ c: [9] });
    provider.failRelease = true;
    await assert.rejects(backupMachine({ repo, provider, machine: 'c', mode: 'full' }), (err: unknown) => {
      assert.ok(err instanceof IoError);
      assert.match(err.message, /^releasing c failed \(generation 1 of set mem-c was committed and is complete\)$/);
      return true;
    });
    assert.equal((await repo.listGenerations('mem-c')).length, 1);
  });

  it('the batch runs a provider\'s machines: named, resolved and unresolved targets, one record each', async () => {
    const provider = new MemoryProvider({ d: [11], e: [13] });
    const report = await runBackupBatch({
      repo, repoLocation: repo.location, provider, mode: 'auto', quiesce: false, memory: false, enableCbt: false,
      targets: [{ name: 'd', excludeDisks: [] }, { name: 'e', id: 'e', excludeDisks: [] }, { name: 'f', unresolved: 'machine f does not exist in memory' }],
      concurrency: { vms: 2, disksPerVm: 1, snapshots: 1 }, hooks: { pre: [], post: [] },
    });
    assert.deepEqual(report.vms.map((v) => [v.vm, v.moref ?? null, v.set, v.ok, v.generation ?? null]),
      [['d', 'id-d', 'mem-d', true, 1], ['e', 'e', 'mem-e', true, 1], ['f', null, 'mem-f', false, null]]);
    assert.deepEqual(report.vms[2]!.error, { code: 'NOT_FOUND', message: 'machine f does not exist in memory' });
    assert.equal(report.transferred.bytes, 2 * 2 * MiB, 'every disk read went through the batch\'s counter');
    assert.deepEqual(provider.begun.sort(), ['d', 'e']);
  });
});
