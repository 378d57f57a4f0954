/**
 * Copies generations from one repository into another (`vmbkp copy`, a recipe's `copy`):
 * the generations of the chosen sets that the destination lacks, in their order, each
 * under the destination's next free number of its set. A generation is already there when
 * the destination's set holds a generation with the same manifest `id`; it is skipped, so
 * a second copy reads no chunk and writes nothing.
 *
 * Under a shared lock on both repositories, per generation: each disk's index read from
 * the source, its chunks copied (engine/copy-disk.ts: only what the destination lacks is
 * sent), its index stored in the destination's ids; then the packs and their index file
 * made durable (the writer's flush, as a backup's), and the manifest written last through
 * the backups' commit. A failure or a kill leaves that generation uncommitted — at most
 * packs no generation references, which the next copy finds once their index file is
 * written, and gc removes otherwise — and stops the copy: generations committed before it
 * stay, and those after it wait, so that the order is kept.
 */
import { NotFoundError, RepositoryDamagedError, UsageError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { Progress } from '../engine/backup-disk.js';
import { type CopyCounters, addCounters, copyDisk, zeroCounters } from '../engine/copy-disk.js';
import { type BlobCompatibility, blobCompatibility } from '../repository/compatibility.js';
import { type DiskIndex, loadDiskIndex, storeDiskIndex } from '../repository/disk-index.js';
import type { DiskRecord, GenerationManifest } from '../repository/generation.js';
import { toHex } from '../repository/digest.js';
import { checkSetName } from '../repository/layout.js';
import { RepositoryLock } from '../repository/lock.js';
import type { PoolLease, Repository } from '../repository/repository.js';
import { commitAsNext } from './commit-generation.js';
import { type MachineFileRef, machineFileRefs, readMachineFile, storeMachineFile, withMachineFiles } from '../repository/machine-files.js';
import { type GenerationSelector, chooseGeneration, parseGenerationSelector } from './select-generation.js';

export type { CopyCounters } from '../engine/copy-disk.js';

/** One source generation and what became of it. */
export interface GenerationCopy extends CopyCounters {
  readonly set: string;
  /** The manifest's id: what tells whether the destination has it. */
  readonly id: string;
  /** Its number in the source. */
  readonly from: number;
  /** Its number in the destination: the one it got, the one it has already, or (dry run) the one it would get. */
  readonly to: number;
  /** `present`: the destination had it, nothing was read or sent; `planned`: a dry run's. */
  readonly status: 'copied' | 'present' | 'planned';
}

export interface CopyReport extends CopyCounters {
  /** Locations of the source and the destination. */
  readonly from: string;
  readonly to: string;
  readonly dryRun: boolean;
  /** The sets looked at. */
  readonly sets: readonly string[];
  readonly generations: readonly GenerationCopy[];
  readonly copied: number;
  readonly present: number;
  /** Both use the same chunk ids (plaintext both, or one master key): chunks the destination has were not read. */
  readonly sameIds: boolean;
  /**
   * A dry run's chunksSent and bytesSent: `exact` when both use the same chunk ids (the
   * destination's index says which it lacks), else `at most` (every chunk of the
   * generations, as the source stores them: which the destination has is known only by
   * reading them).
   */
  readonly predicted?: 'exact' | 'at most';
  readonly durationMs: number;
}

export type CopyEvent =
  | { type: 'generation-start'; set: string; from: number }
  /** A disk's chunks are about to be read; `progress` events follow (bytes to read and read). */
  | { type: 'disk-start'; set: string; from: number; disk: string }
  | { type: 'progress'; set: string; from: number; disk: string; progress: Progress }
  | { type: 'generation-done'; generation: GenerationCopy }
  | { type: 'warning'; message: string };

export interface CopyRequest {
  readonly from: Repository;
  readonly to: Repository;
  /** The sets to copy; every set of the source when absent or empty. */
  readonly sets?: readonly string[] | undefined;
  /** A generation selector (select-generation.ts): `latest`, `latest~N` and dates pick in each set; every generation when absent. */
  readonly generation?: string | undefined;
  /** Says what would be copied, reading manifests only: no lock, no chunk, nothing written. */
  readonly dryRun?: boolean | undefined;
  readonly workers?: number | undefined;
  readonly onEvent?: ((e: CopyEvent) => void) | undefined;
}

/** Whether a selector names a generation of one set only (numbers and ids differ between sets). */
export function selectsInOneSet(sel: GenerationSelector): boolean {
  return sel.kind === 'number' || sel.kind === 'id';
}

/** Refuses pairs a copy cannot serve: one repository twice, or two chunk sizes (chunks are not cut again). */
export function checkCopyPair(from: Repository, to: Repository): void {
  const what = `copying from ${from.location} to ${to.location} refused`;
  if (from.config.id === to.config.id) {
    throw new UsageError(`${what}: they are the same repository (id ${from.config.id})`);
  }
  if (from.config.chunkSize !== to.config.chunkSize) {
    throw new UsageError(`${what}: their chunk sizes differ (${from.config.chunkSize} and ${to.config.chunkSize} bytes) and chunks are not cut again; `
      + `copy into a repository made with: vmbkp init --repo DEST --from-repo ${from.location}`);
  }
}

export async function copyGenerations(req: CopyRequest): Promise<CopyReport> {
  const t0 = performance.now();
  const { from, to } = req;
  const emit = req.onEvent ?? (() => {});
  const warn = (message: string) => emit({ type: 'warning', message });
  checkCopyPair(from, to);
  const which = req.generation === undefined ? undefined : { text: req.generation, sel: parseGenerationSelector(req.generation) };
  const named = [...new Set(req.sets ?? [])];
  named.forEach(checkSetName);
  const dryRun = req.dryRun ?? false;
  if (from.encrypted && !to.encrypted) warn(`${to.location} is not encrypted: the generations copied from ${from.location} are stored there in plaintext`);

  const locks: RepositoryLock[] = [];
  const job = new CopyJob(from, to, blobCompatibility(from, to), req.workers, emit);
  try {
    if (!dryRun) {
      locks.push(await RepositoryLock.acquire(from, 'shared', `copy to ${to.location}`, warn));
      locks.push(await RepositoryLock.acquire(to, 'shared', `copy from ${from.location}`, warn));
    }
    const bySet = new Map<string, number[]>();
    for (const r of await from.listGenerations()) bySet.set(r.set, [...(bySet.get(r.set) ?? []), r.generation]);
    for (const s of named) if (!bySet.has(s)) throw new NotFoundError(`set ${s} has no generations in ${from.location}`);
    const sets = named.length > 0 ? named : [...bySet.keys()];
    // Read only: a dry run needs them too, to say which chunks the destination lacks.
    await from.loadIndex();
    await to.loadIndex();
    for (const set of sets) await job.copySet(set, bySet.get(set)!, which, dryRun);
  } finally {
    await job.close();
    for (const l of locks.reverse()) await l.release();
  }
  const results = job.results;
  return {
    from: from.location, to: to.location, dryRun, sets: [...new Set(results.map((r) => r.set))],
    generations: results,
    copied: results.filter((r) => r.status === 'copied').length,
    present: results.filter((r) => r.status === 'present').length,
    ...job.counters, sameIds: job.compat.sameIds,
    ...(dryRun ? { predicted: job.compat.sameIds ? 'exact' as const : 'at most' as const } : {}), durationMs: Math.round(performance.now() - t0),
  };
}

/** The state of one copy run: pools started when the first generation needs them, what was done. */
class CopyJob {
  readonly results: GenerationCopy[] = [];
  readonly counters = zeroCounters();
  /** A dry run's: blobs an earlier planned generation sends. */
  private readonly planned = new Set<string>();
  private fromPool: PoolLease | undefined;
  private toPool: PoolLease | undefined;

  constructor(private readonly from: Repository, private readonly to: Repository, readonly compat: BlobCompatibility,
    private readonly workers: number | undefined, private readonly emit: (e: CopyEvent) => void) {}

  async close(): Promise<void> {
    await this.toPool?.release();
    await this.fromPool?.release();
  }

  private done(g: GenerationCopy): void {
    this.results.push(g);
    addCounters(this.counters, g);
    this.emit({ type: 'generation-done', generation: g });
  }

  async copySet(set: string, numbers: readonly number[], which: { text: string; sel: GenerationSelector } | undefined, dryRun: boolean): Promise<void> {
    const { from, to } = this;
    const source: GenerationManifest[] = [];
    for (const n of numbers) source.push(await from.readGeneration(set, n));
    let selected = source;
    if (which?.sel.kind === 'number') {
      const n = which.sel.generation;
      selected = source.filter((m) => m.generation === n);
      if (selected.length === 0) throw new NotFoundError(`set ${set} has no generation ${n} in ${from.location}`);
    } else if (which) {
      const chosen = chooseGeneration(set, which.text, which.sel, source);
      selected = source.filter((m) => m.generation === chosen.generation);
    }
    // The destination's generations of the set, by id; kept up to date as this copy commits.
    const there = new Map<string, number>();
    const seen = new Set<number>();
    let latest = 0;
    const learn = async (numbers?: readonly number[]) => {
      for (const n of numbers ?? (await to.listGenerations(set)).map((r) => r.generation)) {
        if (seen.has(n)) continue;
        there.set((await to.readGeneration(set, n)).id, n);
        seen.add(n);
        latest = Math.max(latest, n);
      }
    };
    await learn();
    let planned = latest;
    for (const m of selected) {
      const known = there.get(m.id);
      const record = { set, id: m.id, from: m.generation };
      if (known !== undefined) {
        this.done({ ...record, to: known, status: 'present', ...zeroCounters() });
        continue;
      }
      if (dryRun) {
        this.done({ ...record, to: ++planned, status: 'planned', ...(await this.predict(m)) });
        continue;
      }
      // The newest earlier generation both hold: where a chunk's destination id can be looked up by position.
      const base = this.compat.sameIds ? undefined : source.filter((g) => g.generation < m.generation && there.has(g.id)).pop();
      const copied = await this.copyGeneration(m, base && { from: base, to: there.get(base.id)! });
      const manifest: GenerationManifest = {
        ...m, generation: latest + 1, disks: copied.disks,
        ...(m.machine !== undefined ? { machine: withMachineFiles(m.machine, copied.files) } : {}),
      };
      const commit = await commitAsNext(to, manifest, {
        onWarning: (message) => this.emit({ type: 'warning', message }),
        // Under the set's commit lock: another copy may have committed the generation meanwhile, then ours is not needed.
        alreadyThere: async (numbers) => { await learn(numbers); return there.get(m.id); },
      });
      if (!commit.committed) {
        this.done({ ...record, to: commit.generation, status: 'present', ...copied.counters });
        continue;
      }
      await failpoint('copy:committed');
      there.set(m.id, commit.generation);
      seen.add(commit.generation);
      latest = Math.max(latest, commit.generation);
      this.done({ ...record, to: commit.generation, status: 'copied', ...copied.counters });
    }
  }

  /**
   * What copying `m` would send, for a dry run: the blobs (chunks, and index pieces and
   * the machine's saved files in bytesSent) the destination lacks and no earlier planned generation sends, at their
   * size in the source. Reads the disks' indexes only.
   */
  private async predict(m: GenerationManifest): Promise<CopyCounters> {
    const c = zeroCounters();
    /** The bytes a blob adds: 0 when an earlier one of this plan sends it, undefined when the destination has it. */
    const sends = (hex: string): number | undefined => {
      if (this.compat.sameIds && this.to.lookup(hex)) return undefined;
      if (this.planned.has(hex)) return 0;
      this.planned.add(hex);
      return this.from.lookup(hex)?.length ?? 0;
    };
    for (const d of m.disks) {
      const index = await loadDiskIndex(this.from, d, `planning the copy of set ${m.set} generation ${m.generation} disk ${d.name}`);
      for (let i = 0; i < index.count; i++) {
        if (index.isZero(i)) continue;
        const n = sends(toHex(index.get(i)));
        if (n === undefined) c.chunksPresent++;
        else if (n > 0) { c.chunksSent++; c.bytesSent += n; }
      }
      for (const piece of d.index) c.bytesSent += sends(piece) ?? 0;
    }
    // The machine's saved files, like index pieces: in bytesSent only.
    for (const f of machineFileRefs(m.machine, `set ${m.set} generation ${m.generation}`)) {
      for (const hex of f.blobs) c.bytesSent += sends(hex) ?? 0;
    }
    return c;
  }

  /** Copies every disk of `m`, makes it durable and findable in the destination; returns the disks' records for its manifest. */
  private async copyGeneration(m: GenerationManifest, base: { from: GenerationManifest; to: number } | undefined): Promise<{ disks: DiskRecord[]; files: MachineFileRef[]; counters: CopyCounters }> {
    const { from, to, compat } = this;
    this.emit({ type: 'generation-start', set: m.set, from: m.generation });
    this.fromPool ??= from.acquirePool(this.workers);
    if (!compat.sameStored) this.toPool ??= to.acquirePool(this.workers);
    const writer = to.writer();
    const counters = zeroCounters();
    const disks: DiskRecord[] = [];
    const baseTo = base ? await this.readBase(m.set, base.to) : undefined;
    for (const d of m.disks) {
      const what = `copying set ${m.set} generation ${m.generation} disk ${d.name}`;
      if (d.chunkSize !== to.config.chunkSize) {
        throw new UsageError(`${what} refused: it was backed up with ${d.chunkSize}-byte chunks, ${to.location} uses ${to.config.chunkSize}`);
      }
      const index = await loadDiskIndex(from, d, `${what} failed: its index`);
      const baseIndex = base && baseTo ? await this.baseIndexes(what, d, base.from, baseTo) : undefined;
      this.emit({ type: 'disk-start', set: m.set, from: m.generation, disk: d.name });
      const r = await copyDisk({
        from, to, fromPool: this.fromPool.pool, toPool: this.toPool?.pool, writer, compat, index, base: baseIndex, what,
        onProgress: (progress) => this.emit({ type: 'progress', set: m.set, from: m.generation, disk: d.name, progress }),
      });
      const stored = await storeDiskIndex(to, writer, r.index);
      addCounters(counters, r.counters);
      counters.bytesSent += stored.bytesStored;
      disks.push({ ...d, index: stored.pieces });
    }
    // The machine's saved files (a VM's .vmx and nvram), stored under the destination's ids.
    const files: MachineFileRef[] = [];
    for (const f of machineFileRefs(m.machine, `set ${m.set} generation ${m.generation}`)) {
      const data = await readMachineFile(from, f, `copying set ${m.set} generation ${m.generation} file ${f.name}`);
      const stored = await storeMachineFile(to, writer, { name: f.name, role: f.role, data });
      counters.bytesSent += stored.bytesStored;
      files.push(stored.ref);
    }
    await writer.flush();
    await failpoint('copy:before-commit');
    return { disks, files, counters };
  }

  /** The destination's manifest of the base generation; none (a warning) when it is gone or damaged: every chunk is then read. */
  private async readBase(set: string, generation: number): Promise<GenerationManifest | undefined> {
    try {
      return await this.to.readGeneration(set, generation);
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof RepositoryDamagedError)) throw err;
      this.emit({ type: 'warning', message: `${err.message}; every chunk of the next generation of set ${set} is read from the source` });
      return undefined;
    }
  }

  /** A disk's index in the base generation, in both repositories, when the disk was there with the same size. */
  private async baseIndexes(what: string, d: DiskRecord, fromBase: GenerationManifest, toBase: GenerationManifest): Promise<{ from: DiskIndex; to: DiskIndex } | undefined> {
    const same = (x: DiskRecord) => x.name === d.name && x.size === d.size && x.chunkSize === d.chunkSize;
    const f = fromBase.disks.find(same);
    const t = toBase.disks.find(same);
    if (!f || !t) return undefined;
    try {
      return {
        from: await loadDiskIndex(this.from, f, `${what}: the index of generation ${fromBase.generation} in ${this.from.location}`),
        to: await loadDiskIndex(this.to, t, `${what}: the index of generation ${toBase.generation} in ${this.to.location}`),
      };
    } catch (err) {
      if (!(err instanceof RepositoryDamagedError)) throw err;
      this.emit({ type: 'warning', message: `${err.message}; every chunk of the disk is read from the source` });
      return undefined;
    }
  }
}
