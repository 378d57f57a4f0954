/**
 * verify: every key object is intact, every object a generation references exists where
 * the index says; with readData, every blob is read, opened (encrypted repositories),
 * decompressed and checked against its id. Problems name the set, generation and disk
 * they affect.
 */
import { decodeChecked, readPackRange } from './blob-read.js';
import { sha256, toHex } from './digest.js';
import type { OnCountProgress } from './count-progress.js';
import type { BlobLocation } from './index-file.js';
import { DATA_PREFIX, packIdFromName } from './layout.js';
import { RepositoryLock } from './lock.js';
import { writeRecord } from './records.js';
import type { Repository } from './repository.js';
import { type DiskRef, describeRef, walkDisks } from './references.js';

export interface Problem extends Partial<DiskRef> {
  readonly message: string;
}

export interface VerifyReport {
  readonly generations: number;
  readonly disks: number;
  readonly packs: number;
  readonly blobs: number;
  readonly bytesRead: number;
  readonly unreferencedPacks: number;
  /** null when a damaged generation hides what it references. */
  readonly unreferencedBlobs: number | null;
  readonly problems: Problem[];
}

export interface VerifyRequest {
  readonly repo: Repository;
  readonly readData: boolean;
  readonly onProgress?: OnCountProgress;
  readonly onWarning?: (message: string) => void;
}

export async function verify(req: VerifyRequest): Promise<VerifyReport> {
  const { repo } = req;
  const lock = await RepositoryLock.acquire(repo, 'shared', 'verify', req.onWarning);
  try {
    const report = await run(req);
    await record(repo, req, report);
    return report;
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}

/**
 * Leaves what this verify found for `vmbkp status` (records.ts). Not being able to write it
 * (read-only credentials) does not fail the verify: it only goes unrecorded.
 */
async function record(repo: Repository, req: VerifyRequest, report: VerifyReport): Promise<void> {
  const failed = new Map<string, { set: string; generation: number }>();
  for (const p of report.problems) {
    if (p.set !== undefined && p.generation !== undefined) failed.set(`${p.set}/${p.generation}`, { set: p.set, generation: p.generation });
  }
  try {
    await writeRecord(repo, {
      kind: 'verify', time: new Date().toISOString(), readData: req.readData, ok: report.problems.length === 0,
      generations: report.generations, problems: report.problems.length, failed: [...failed.values()],
    });
  } catch (err) {
    req.onWarning?.(`the result of this verify was not recorded in ${repo.location} (vmbkp status will not show it): ${(err as Error).message}`);
  }
}

async function run(req: VerifyRequest): Promise<VerifyReport> {
  const { repo } = req;
  const problems: Problem[] = [];
  // Key objects are named by their content: a damaged one is found without its password.
  if (repo.encrypted) await repo.keys((err) => problems.push({ message: err.message }));
  await repo.loadIndex((err) => problems.push({ message: err.message }));
  await repo.checkMergedIndexFiles((err) => problems.push({ message: err.message }));

  const packSizes = new Map<string, number>();
  for (const name of await repo.backend.list(DATA_PREFIX)) {
    const st = await repo.backend.stat(name);
    if (st) packSizes.set(packIdFromName(name), st.size);
  }

  // Blobs that cannot be read back, with the reason.
  const bad = new Map<string, string>();
  // Blobs by pack only when their data is read: the index is streamed, not held (master-index.ts).
  const byPack = new Map<string, [string, BlobLocation][]>();
  const indexedPacks = new Set<string>();
  let blobs = 0;
  for (const [hex, loc] of repo.entries()) {
    blobs++;
    indexedPacks.add(loc.pack);
    const size = packSizes.get(loc.pack);
    if (size === undefined) bad.set(hex, `its pack ${loc.pack} is missing`);
    else if (loc.offset + loc.length > size) bad.set(hex, `its pack ${loc.pack} is truncated`);
    else if (req.readData) {
      const l = byPack.get(loc.pack) ?? [];
      l.push([hex, loc]);
      byPack.set(loc.pack, l);
    }
  }

  let bytesRead = 0;
  if (req.readData) {
    let packsDone = 0;
    req.onProgress?.({ step: 'reading packs', unit: 'packs', done: 0, total: byPack.size });
    for (const [pack, entries] of byPack) {
      const raw = await readPackRange(repo.backend, pack, 'verify');
      bytesRead += raw.length;
      let blobsOk = true;
      for (const [hex, loc] of entries) {
        try {
          decodeChecked(repo.codec, raw.subarray(loc.offset, loc.offset + loc.length), { digest: hex, loc }, 'verify');
        } catch {
          bad.set(hex, `blob ${hex} in pack ${pack} is corrupt`);
          blobsOk = false;
        }
      }
      // Blobs fine but the file differs from its name: the trailer (what rebuilds the index) is damaged.
      if (blobsOk && sha256(raw).toString('hex') !== pack) {
        problems.push({ message: `pack ${pack}: content does not match its name (its trailer is damaged; the blobs it holds are intact)` });
      }
      req.onProgress?.({ step: 'reading packs', unit: 'packs', done: ++packsDone, total: byPack.size });
    }
  }

  const referenced = new Set<string>();
  let disks = 0;
  let referencesComplete = true;
  const seenGen = new Set<string>();
  await walkDisks(repo, {
    progress: (done, total) => req.onProgress?.({ step: 'checking generations', unit: 'generations', done, total }),
    disk(ref, record, index) {
      disks++;
      seenGen.add(`${ref.set}/${ref.generation}`);
      for (const p of record.index) referenced.add(p);
      let missing = 0, corrupt = 0, firstMissing = -1, firstCorrupt = -1, reason = '';
      // Zero pieces (most of a thin disk) are skipped whole.
      for (const i of index.dataChunks()) {
        const hex = toHex(index.get(i));
        referenced.add(hex);
        if (!repo.lookup(hex)) { if (missing++ === 0) firstMissing = i * index.chunkSize; continue; }
        const why = bad.get(hex);
        if (why) { if (corrupt++ === 0) { firstCorrupt = i * index.chunkSize; reason = why; } }
      }
      if (missing) problems.push({ ...ref, message: `${describeRef(ref)}: ${missing} chunks missing from the repository (first at offset ${firstMissing})` });
      if (corrupt) problems.push({ ...ref, message: `${describeRef(ref)}: ${corrupt} chunks unreadable (first at offset ${firstCorrupt}: ${reason})` });
    },
    files(ref, files) {
      seenGen.add(`${ref.set}/${ref.generation}`);
      for (const f of files) {
        const missing = f.blobs.filter((hex) => !repo.lookup(hex)).length;
        const why = f.blobs.map((hex) => bad.get(hex)).find((x) => x !== undefined);
        f.blobs.forEach((hex) => referenced.add(hex));
        if (missing) problems.push({ set: ref.set, generation: ref.generation, message: `${describeRef(ref)}: saved file ${f.name}: ${missing} of its ${f.blobs.length} blobs missing from the repository` });
        else if (why) problems.push({ set: ref.set, generation: ref.generation, message: `${describeRef(ref)}: saved file ${f.name} unreadable: ${why}` });
      }
    },
    damaged(where, err) {
      referencesComplete = false;
      seenGen.add(`${where.set}/${where.generation}`);
      if (where.disk !== undefined) disks++;
      const prefix = describeRef(where);
      problems.push({ ...where, message: err.message.startsWith(prefix) ? err.message : `${prefix}: ${err.message}` });
    },
  });

  let unreferencedBlobs: number | null = null;
  if (referencesComplete) {
    unreferencedBlobs = 0;
    for (const [hex] of repo.entries()) if (!referenced.has(hex)) unreferencedBlobs++;
  }
  return {
    generations: seenGen.size,
    disks,
    packs: packSizes.size,
    blobs,
    bytesRead,
    unreferencedPacks: [...packSizes.keys()].filter((p) => !indexedPacks.has(p)).length,
    unreferencedBlobs,
    problems,
  };
}
