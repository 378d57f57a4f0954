/**
 * gc: removes data that no generation references, under an exclusive lock.
 *
 * Order, so that a crash at any point leaves every generation readable:
 *   1. find what every generation references (refuse to run if any cannot be read);
 *   2. copy the live blobs of partly dead packs into new packs (verified as they are copied);
 *   3. write one new index file for all live blobs;
 *   4. remove the old index files;
 *   5. remove dead and repacked packs, and leftovers of interrupted uploads.
 * In a repository with an object lock, a pack that is still locked, or that a still-locked
 * index file lists, is kept whole (removing it would leave that index pointing nowhere),
 * and a locked index file stays; the result says how much dead data waits, and until when.
 * A crash before 3 leaves new unindexed packs; between 3 and 5, duplicate or unindexed
 * packs. Each is garbage that the next gc removes; no step removes the last copy of a
 * live blob before its replacement is durable.
 */
import { RepositoryDamagedError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { ABANDONED_UPLOAD_AGE_MS } from '../storage/backend.js';
import type { OnCountProgress } from './count-progress.js';
import { toHex } from './digest.js';
import type { BlobLocation, IndexedPack } from './index-file.js';
import { readIndexFile, writeIndexFile } from './index-files.js';
import { DATA_PREFIX, packIdFromName, packName } from './layout.js';
import { RepositoryLock } from './lock.js';
import { writeRecord } from './records.js';
import { PACK_TARGET_SIZE, putPack } from './pack-writer.js';
import type { GenerationRef, Repository } from './repository.js';
import { decodeChecked, readPackRange } from './blob-read.js';
import { describeRef, walkDisks } from './references.js';
import { type PackEntry, PackBuilder } from './pack.js';

export interface GcResult {
  readonly packsRemoved: number;
  readonly packsRepacked: number;
  readonly packsWritten: number;
  readonly blobsRemoved: number;
  readonly bytesFreed: number;
  /** Leftovers of interrupted uploads cleared (a dry run clears and counts none). */
  readonly uploadsSwept: number;
  /** Nothing was written or removed: the figures are what gc would do. */
  readonly dryRun: boolean;
  /** Dead data that an object lock keeps for now: packs holding some, their bytes, and when the last of them unlocks. */
  readonly locked?: { readonly packs: number; readonly bytes: number; readonly until: string };
}

export interface GcRequest {
  readonly repo: Repository;
  /**
   * Say what gc would free, writing and removing nothing and taking no lock (a lock is a
   * write): the same decisions, with repacked packs sized but not built from their data.
   */
  readonly dryRun?: boolean | undefined;
  readonly onWarning?: (message: string) => void;
  readonly onProgress?: OnCountProgress;
}

export interface GcPlanOptions {
  readonly dryRun: boolean;
  readonly onProgress?: OnCountProgress | undefined;
  readonly onWarning?: ((message: string) => void) | undefined;
  /** Generations to count as gone already (what a prune's dry run would remove). */
  readonly without?: readonly GenerationRef[] | undefined;
}

export async function gc(req: GcRequest): Promise<GcResult> {
  const opts: GcPlanOptions = { dryRun: !!req.dryRun, onProgress: req.onProgress, onWarning: req.onWarning };
  if (req.dryRun) return gcUnderLock(req.repo, opts);
  const lock = await RepositoryLock.acquire(req.repo, 'exclusive', 'gc', req.onWarning);
  try {
    return await gcUnderLock(req.repo, opts);
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}

/** gc for a caller that holds the exclusive lock already (prune then gc), or a dry run (no lock). */
export async function gcUnderLock(repo: Repository, opts: GcPlanOptions): Promise<GcResult> {
  // Credentials that may not delete (an append-only user) are refused before anything is written.
  if (!opts.dryRun) await repo.backend.checkDeletable?.();
  const result = await run(repo, opts);
  if (opts.dryRun) return result;
  // For `vmbkp status`; a gc that did its work but could not say so is still a gc that worked.
  await writeRecord(repo, { kind: 'gc', time: new Date().toISOString(), packsRemoved: result.packsRemoved, bytesFreed: result.bytesFreed })
    .catch((err: unknown) => opts.onWarning?.(`this gc was not recorded in ${repo.location} (vmbkp status will not show it): ${(err as Error).message}`));
  return result;
}

function entryOf(hex: string, loc: BlobLocation): PackEntry {
  return { digest: Buffer.from(hex, 'hex'), type: loc.type, compression: loc.compression, offset: loc.offset, length: loc.length, rawLength: loc.rawLength };
}

async function run(repo: Repository, opts: GcPlanOptions): Promise<GcResult> {
  const { onProgress } = opts;
  const { backend } = repo;
  const { dryRun } = opts;
  await repo.loadIndex();
  const gone = new Set((opts.without ?? []).map((r) => `${r.set}\0${r.generation}`));
  const refs = gone.size > 0 ? (await repo.listGenerations()).filter((r) => !gone.has(`${r.set}\0${r.generation}`)) : undefined;

  const referenced = new Set<string>();
  await walkDisks(repo, {
    progress: (done, total) => onProgress?.({ step: 'reading generations', unit: 'generations', done, total }),
    disk(ref, record, index) {
      for (const p of record.index) referenced.add(p);
      for (const i of index.dataChunks()) {
        const hex = toHex(index.get(i));
        if (!repo.lookup(hex)) {
          throw new RepositoryDamagedError(`gc refused: ${describeRef(ref)} references chunk ${hex}, which is missing; run vmbkp verify`);
        }
        referenced.add(hex);
      }
    },
    files(ref, files) {
      for (const f of files) {
        for (const hex of f.blobs) {
          if (!repo.lookup(hex)) throw new RepositoryDamagedError(`gc refused: ${describeRef(ref)} references blob ${hex} of its saved file ${f.name}, which is missing; run vmbkp verify`);
          referenced.add(hex);
        }
      }
    },
  }, refs);

  // What each existing pack holds, from every index file (a blob may be indexed in several packs).
  const packSizes = new Map<string, number>();
  /** Packs that may not go yet, and until when: locked themselves, or listed in a locked index file. */
  const pinned = new Map<string, number>();
  for (const name of await backend.list(DATA_PREFIX)) {
    const st = await backend.stat(name);
    packSizes.set(packIdFromName(name), st?.size ?? 0);
    if (st?.lockedUntilMs !== undefined) pinned.set(packIdFromName(name), st.lockedUntilMs);
  }
  const lockedIndexes = new Set<string>();
  const contents = new Map<string, Map<string, BlobLocation>>();
  for (const name of repo.indexFileNames()) {
    const indexLockedUntil = repo.config.objectLock ? (await backend.stat(name))?.lockedUntilMs : undefined;
    if (indexLockedUntil !== undefined) lockedIndexes.add(name);
    await readIndexFile(backend, repo.objects, name, (hex, loc) => {
      if (!packSizes.has(loc.pack)) return;
      if (indexLockedUntil !== undefined) pinned.set(loc.pack, Math.max(pinned.get(loc.pack) ?? 0, indexLockedUntil));
      let c = contents.get(loc.pack);
      if (!c) contents.set(loc.pack, (c = new Map()));
      c.set(hex, loc);
    });
  }

  // Pinned packs stay whole, first, so the live blobs they hold need no copy elsewhere. Then
  // keep a pack whole when every blob in it is live and not kept elsewhere already; copy the
  // other live blobs out of the packs that go. Sorted, so reruns decide alike.
  const ids = [...packSizes.keys()].sort();
  const claimed = new Set<string>();
  const keep: IndexedPack[] = [];
  let lockedDead = { packs: 0, bytes: 0, until: 0 };
  for (const id of ids.filter((i) => pinned.has(i))) {
    const c = contents.get(id) ?? new Map<string, BlobLocation>();
    // A pack no index file lists (a crashed backup's) holds nothing live: all of it is dead.
    if (c.size === 0 || ![...c.keys()].every((hex) => referenced.has(hex) && !claimed.has(hex))) {
      lockedDead = { packs: lockedDead.packs + 1, bytes: lockedDead.bytes + (packSizes.get(id) ?? 0), until: Math.max(lockedDead.until, pinned.get(id)!) };
    }
    for (const hex of c.keys()) if (referenced.has(hex)) claimed.add(hex);
    if (c.size > 0) keep.push({ id, entries: [...c].map(([hex, loc]) => entryOf(hex, loc)).sort((a, b) => a.offset - b.offset) });
  }
  const kept = new Set(pinned.keys());
  for (const id of ids) {
    const c = contents.get(id);
    if (kept.has(id) || !c || c.size === 0) continue;
    if (![...c.keys()].every((hex) => referenced.has(hex) && !claimed.has(hex))) continue;
    for (const hex of c.keys()) claimed.add(hex);
    kept.add(id);
    keep.push({ id, entries: [...c].map(([hex, loc]) => entryOf(hex, loc)).sort((a, b) => a.offset - b.offset) });
  }
  const copies = new Map<string, [string, PackEntry][]>();
  let blobsRemoved = 0;
  for (const id of ids) {
    if (kept.has(id)) continue;
    for (const [hex, loc] of contents.get(id) ?? []) {
      if (!referenced.has(hex) || claimed.has(hex)) { blobsRemoved++; continue; }
      claimed.add(hex);
      const l = copies.get(id) ?? [];
      l.push([hex, entryOf(hex, loc)]);
      copies.set(id, l);
    }
  }
  for (const hex of referenced) {
    if (!claimed.has(hex)) throw new RepositoryDamagedError(`gc refused: blob ${hex} is referenced but no existing pack holds it; run vmbkp verify`);
  }

  // 2. Copy live blobs out of the packs that go, verified on the way.
  const written: IndexedPack[] = [];
  let writtenBytes = 0;
  const builder = new PackBuilder(Buffer.allocUnsafeSlow(PACK_TARGET_SIZE), repo.objects);
  let current = builder;
  const flushBuilder = async () => {
    if (current.count === 0) return;
    const p = current.finish();
    if (!dryRun) await putPack(backend, p);
    writtenBytes += p.size;
    written.push({ id: p.id, entries: p.entries });
    current = new PackBuilder(builder.buffer, repo.objects);
  };
  let repacked = 0;
  for (const [id, blobs] of copies) {
    onProgress?.({ step: 'repacking', unit: 'packs', done: repacked++, total: copies.size });
    // A dry run packs zeros of each blob's length: the new packs' sizes, without reading a byte.
    const raw = dryRun ? Buffer.alloc(blobs.reduce((n, [, e]) => Math.max(n, e.offset + e.length), 0)) : await readPackRange(backend, id, 'gc');
    for (const [hex, e] of blobs) {
      const data = raw.subarray(e.offset, e.offset + e.length);
      if (!dryRun) decodeChecked(repo.codec, data, { digest: hex, loc: { pack: id, ...e } }, 'gc');
      if (!current.fitsWithTrailer(data.length)) await flushBuilder();
      current.add(e.digest, e.type, e.compression, e.rawLength, data);
    }
  }
  await flushBuilder();
  if (copies.size > 0) onProgress?.({ step: 'repacking', unit: 'packs', done: repacked, total: copies.size });
  // A pack written now may be byte-identical to one that was to go (left by an interrupted gc): it stays.
  const writtenIds = new Set(dryRun ? [] : written.map((p) => p.id));
  const drop = ids.filter((id) => !kept.has(id) && !writtenIds.has(id));
  await failpoint('gc:packs-written');

  // 3–4. One index for everything live, then the old ones go.
  const oldIndexes = repo.indexFileNames();
  // Locked index files stay whatever gc does: rewriting the others into one is only worth it when they are several.
  const nothingToDo = drop.length === 0 && written.length === 0 && oldIndexes.filter((n) => !lockedIndexes.has(n)).length <= 1;
  if (!nothingToDo && !dryRun) {
    const live = [...keep, ...written];
    const newIndex = live.length > 0 ? await writeIndexFile(backend, repo.objects, live) : undefined;
    await failpoint('gc:index-written');
    for (const name of oldIndexes) if (name !== newIndex && !lockedIndexes.has(name)) await backend.remove(name);
    await failpoint('gc:indexes-removed');
    // 5. Data nothing points at any more.
    for (const [i, id] of drop.entries()) {
      onProgress?.({ step: 'removing packs', unit: 'packs', done: i, total: drop.length });
      await backend.remove(packName(id));
    }
    if (drop.length > 0) onProgress?.({ step: 'removing packs', unit: 'packs', done: drop.length, total: drop.length });
  }
  const bytesFreed = drop.reduce((n, id) => n + (packSizes.get(id) ?? 0), 0) - writtenBytes;
  const uploadsSwept = dryRun ? 0 : await backend.sweep(ABANDONED_UPLOAD_AGE_MS);
  return {
    packsRemoved: drop.length, packsRepacked: copies.size, packsWritten: written.length, blobsRemoved, bytesFreed: Math.max(0, bytesFreed), uploadsSwept, dryRun,
    ...(lockedDead.packs > 0 ? { locked: { ...lockedDead, until: new Date(lockedDead.until).toISOString() } } : {}),
  };
}
