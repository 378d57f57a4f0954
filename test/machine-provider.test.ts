/**
 * The jobs are generic over the MachineProvider seam: a second provider (machines whose
 * disks are byte patterns in memory, no hypervisor) backs up through the same batch and
 * job as vSphere. The job ends every backup it begins — after success and after failure —
 * and a failed release after a committed generation fails the job, saying the generation
 * stands. Restores run through the same generic part of the restore job: the provider
 * only makes a machine and opens its disks (buffers in memory, one of them sequential);
 * the job writes, reads back, completes and finishes — or abandons the machine on the
 * first failure and on an interrupt.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IoError } from '../src/errors.js';
import { runBackupBatch } from '../src/jobs/backup-batch.js';
import { backupMachine } from '../src/jobs/backup-machine.js';
import { restoreOnto } from '../src/jobs/restore-machine.js';
import type {
  BackupProvider, BeginBackupOptions, MachineBackup, MachineInventory, MachineRecord, MachineRestoreContext, MachineRestoreEvent,
  MachineRestoreRequest, MachineSurvey, MachineToBackUp, MachineUnderRestore, RestoreProvider, RestoredMachine, WrittenDisk,
} from '../src/providers/machine-provider.js';
import { loadDiskIndex } from '../src/repository/disk-index.js';
import type { GenerationManifest } from '../src/repository/generation.js';
import { Repository } from '../src/repository/repository.js';
import type { DiskSource, Extent, RestoreTarget } from '../src/sources/types.js';
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

/** The byte k of a pattern disk of `seed`. */
const patternOf = (size: number, seed: number) => {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (k * seed) & 0xff;
  return b;
};

/**
 * A disk of a machine restored in memory. Sequential: writes and zeros must come in
 * increasing order. `failWrites` fails every write; `gate` holds each write until it
 * resolves, and a while after.
 */
class MemoryTarget implements RestoreTarget {
  readonly bytes: Buffer;
  readonly zeroed = true;
  readonly sequential?: true;
  writes = 0;
  flushed = false;
  closed = false;
  private position = 0;
  constructor(readonly description: string, readonly size: number,
    opts: { sequential?: boolean; failWrites?: boolean; gate?: Promise<void>; onClose?: () => void } = {}) {
    this.bytes = Buffer.alloc(size);
    if (opts.sequential) this.sequential = true;
    this.opts = opts;
  }
  private readonly opts: { sequential?: boolean; failWrites?: boolean; gate?: Promise<void>; onClose?: () => void };
  private at(offset: number, length: number): void {
    if (offset < 0 || offset + length > this.size) throw new IoError(`${this.description}: ${length} bytes at ${offset} do not fit`);
    if (this.sequential) {
      if (offset < this.position) throw new IoError(`${this.description}: write at ${offset} before position ${this.position}`);
      this.position = offset + length;
    }
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.opts.failWrites) throw new IoError(`${this.description}: write at ${offset} failed`);
    if (this.opts.gate) {
      await this.opts.gate;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.at(offset, data.length);
    this.bytes.set(data, offset);
    this.writes++;
  }
  async zero(offset: number, length: number): Promise<void> {
    this.at(offset, length);
    this.bytes.fill(0, offset, offset + length);
  }
  async flush(): Promise<void> { this.flushed = true; }
  async readBack(offset: number, length: number, into: Buffer): Promise<void> { this.bytes.copy(into, 0, offset, offset + length); }
  async close(): Promise<void> {
    this.closed = true;
    this.opts.onClose?.();
  }
}

interface MemoryRestoreRequest extends MachineRestoreRequest {
  /** Disks (by index) whose writes fail. */
  readonly failDisks?: readonly number[];
}

/** Restores machines into memory: what the provider did, and the disks it opened. */
class MemoryRestoreProvider implements RestoreProvider<MemoryRestoreRequest, RestoredMachine & { written: readonly WrittenDisk[] }> {
  readonly calls: string[] = [];
  readonly targets: MemoryTarget[] = [];
  private failedDiskClosed!: () => void;
  /** Resolves once the job closed a disk whose writes fail. */
  readonly failed = new Promise<void>((resolve) => { this.failedDiskClosed = resolve; });

  async prepareRestore(ctx: MachineRestoreContext, request: MemoryRestoreRequest): Promise<MachineUnderRestore<RestoredMachine & { written: readonly WrittenDisk[] }>> {
    this.calls.push(`prepare ${request.name}`);
    const failing = request.failDisks ?? [];
    return {
      disks: ctx.disks.map((d, i) => ({
        stored: d.stored,
        what: `disk ${i} of machine ${request.name} (disk ${d.stored.name} of ${ctx.gen})`,
        open: async () => {
          this.calls.push(`open ${d.stored.name}`);
          const t = new MemoryTarget(`memory:${request.name}/${i}`, d.stored.capacity, {
            sequential: i === 1,
            failWrites: failing.includes(i),
            // A disk that does not fail waits for one that did, so the failure overtakes it.
            ...(failing.length > 0 && !failing.includes(i) ? { gate: this.failed } : {}),
            onClose: () => { if (failing.includes(i)) this.failedDiskClosed(); },
          });
          this.targets.push(t);
          return t;
        },
      })),
      complete: async () => { this.calls.push('complete'); },
      abandon: async (err) => {
        this.calls.push('abandon');
        return new IoError(`${(err as Error).message} (machine ${request.name} was removed)`, { cause: err });
      },
      finish: async (written) => {
        this.calls.push('finish');
        return { vm: request.name, written };
      },
    };
  }
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
    repo = await Repository.init(new LocalBackend(t.dir), { chunkSize: 64 * 1024 });
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

  describe('restores through the generic job', () => {
    let manifest: GenerationManifest;
    const seeds = [3, 5, 7];

    /** The job's context for the generation of machine r, as restoreMachine builds it after its checks. */
    async function context(): Promise<{ ctx: MachineRestoreContext; release: () => Promise<void> }> {
      const machine = manifest.machine as MachineRecord;
      const gen = `set ${manifest.set} generation ${manifest.generation}`;
      const disks = [];
      for (const stored of machine.disks) {
        disks.push({ stored, index: await loadDiskIndex(repo, manifest.disks.find((r) => r.name === stored.name)!, `restoring ${gen}`) });
      }
      const lease = repo.acquirePool(2);
      const ctx = { repo, manifest, machine, gen, disks, pool: lease.pool } as unknown as MachineRestoreContext;
      return { ctx, release: lease.release };
    }

    before(async () => {
      ({ manifest } = await backupMachine({ repo, provider: new MemoryProvider({ r: seeds }), machine: 'r', mode: 'full' }));
      await repo.loadIndex();
    });

    it('writes every disk (one of them in order), reads it back, completes and finishes the machine', async () => {
      const provider = new MemoryRestoreProvider();
      const events: MachineRestoreEvent[] = [];
      const { ctx, release } = await context();
      try {
        const result = await restoreOnto(provider, ctx, { name: 'r2', diskConcurrency: 2, onEvent: (e) => events.push(e) });
        assert.equal(result.vm, 'r2');
        assert.deepEqual(result.written.map((w) => [w.name, w.size, w.bytesWritten]), seeds.map((_, i) => [`d${i}`, 2 * MiB, 2 * MiB]));
        assert.deepEqual(provider.calls.filter((c) => !c.startsWith('open')), ['prepare r2', 'complete', 'finish']);
        assert.deepEqual(provider.calls.filter((c) => c.startsWith('open')).sort(), ['open d0', 'open d1', 'open d2']);
        assert.equal(provider.targets.find((t) => t.description.endsWith('/1'))!.sequential, true);
        for (const t of provider.targets) {
          const i = Number(t.description.split('/')[1]);
          assert.ok(t.bytes.equals(patternOf(2 * MiB, seeds[i]!)), `${t.description} holds the backed-up bytes`);
          assert.ok(t.flushed && t.closed);
        }
        for (const name of ['d0', 'd1', 'd2']) {
          const mine = events.filter((e) => 'disk' in e && e.disk === name).map((e) => e.type === 'progress' ? 'progress' : e.type === 'disk-start' ? `start ${e.phase}` : e.type);
          assert.deepEqual([...new Set(mine)], ['start write', 'progress', 'start verify', 'disk-done'], `events of ${name}`);
        }
      } finally {
        await release();
      }
    });

    it('the first disk that fails stops the others and abandons the machine; it is never completed', async () => {
      const provider = new MemoryRestoreProvider();
      const events: MachineRestoreEvent[] = [];
      const { ctx, release } = await context();
      try {
        await assert.rejects(restoreOnto(provider, ctx, { name: 'r3', diskConcurrency: 3, failDisks: [0], onEvent: (e) => events.push(e) }),
          (err: unknown) => {
            assert.ok(err instanceof IoError);
            assert.match(err.message, /^memory:r3\/0: write at \d+ failed \(machine r3 was removed\)$/);
            return true;
          });
        assert.deepEqual(provider.calls.filter((c) => !c.startsWith('open')), ['prepare r3', 'abandon']);
        assert.ok(provider.targets.every((t) => t.closed), 'every opened disk is closed');
        assert.ok(!events.some((e) => e.type === 'disk-done'), 'no disk finished: the others stopped at their next write');
      } finally {
        await release();
      }
    });

    it('an interrupt stops the restore at its next write and abandons the machine', async () => {
      const provider = new MemoryRestoreProvider();
      const stop = new AbortController();
      stop.abort('SIGINT');
      const { ctx, release } = await context();
      try {
        await assert.rejects(restoreOnto(provider, ctx, { name: 'r4', signal: stop.signal }),
          (err: unknown) => {
            assert.ok(err instanceof IoError);
            assert.match(err.message, /^restoring disk 0 of machine r4 \(disk d0 of set mem-r generation 1\) was interrupted \(SIGINT\) \(machine r4 was removed\)$/);
            return true;
          });
        assert.deepEqual(provider.calls, ['prepare r4', 'abandon']);
      } finally {
        await release();
      }
    });
  });
});
