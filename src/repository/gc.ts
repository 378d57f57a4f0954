/**
 * gc: removes data that no generation references, under an exclusive lock.
 *
 * Order, so that a crash at any point leaves every generation readable:
 *   1. find what every generation references (refuse to run if any cannot be read);
 *   2. copy the live blobs of partly dead packs into new packs (verified as they are copied);
 *   3. write one new index file for all live blobs;
 *   4. remove the old index files;
 *   5. remove dead and repacked packs, and leftovers of interrupted uploads.
 * A crash before 3 leaves new unindexed packs; between 3 and 5, duplicate or unindexed
 * packs. Each is garbage that the next gc removes; no step removes the last copy of a
 * live blob before its replacement is durable.
 */
import { RepositoryDamagedError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { BlobCodec } from './compression.js';
import { toHex } from './digest.js';
import { type IndexedPack, encodeIndexFile } from './index-file.js';
import { DATA_PREFIX, indexName, packIdFromName, packName } from './layout.js';
import { RepositoryLock } from './lock.js';
import { PACK_TARGET_SIZE, type Repository, checkedDecode } from './repository.js';
import { describeRef, walkDisks } from './references.js';
import { type PackEntry, PackBuilder } from './pack.js';
import { sha256 } from './digest.js';

export interface GcResult {
  readonly packsRemoved: number;
  readonly packsRepacked: number;
  readonly packsWritten: number;
  readonly blobsRemoved: number;
  readonly bytesFreed: number;
  readonly uploadsSwept: number;
}

export interface GcRequest {
  readonly repo: Repository;
  readonly onWarning?: (message: string) => void;
}

export async function gc(req: GcRequest): Promise<GcResult> {
  const lock = await RepositoryLock.acquire(req.repo.backend, 'exclusive', 'gc', req.onWarning);
  try {
    return await run(req.repo);
  } finally {
    await lock.release();
  }
}

async function run(repo: Repository): Promise<GcResult> {
  const { backend } = repo;
  await repo.loadIndex();
  const codec = new BlobCodec();

  const referenced = new Set<string>();
  await walkDisks(repo, codec, {
    disk(ref, record, index) {
      for (const p of record.index) referenced.add(p);
      for (let i = 0; i < index.count; i++) {
        if (index.isZero(i)) continue;
        const hex = toHex(index.get(i));
        if (!repo.lookup(hex)) {
          throw new RepositoryDamagedError(`gc refused: ${describeRef(ref)} references chunk ${hex}, which is missing; run vmbkp verify`);
        }
        referenced.add(hex);
      }
    },
  });

  // What each pack holds, per the index; a blob indexed twice counts only where lookup() finds it.
  const live = new Map<string, PackEntry[]>();
  const indexedCount = new Map<string, number>();
  for (const [hex, loc] of repo.entries()) {
    indexedCount.set(loc.pack, (indexedCount.get(loc.pack) ?? 0) + 1);
    if (!referenced.has(hex)) continue;
    const l = live.get(loc.pack) ?? [];
    l.push({ digest: Buffer.from(hex, 'hex'), type: loc.type, compression: loc.compression, offset: loc.offset, length: loc.length, rawLength: loc.rawLength });
    live.set(loc.pack, l);
  }

  const keep: IndexedPack[] = [];
  const drop: string[] = [];
  const repack: string[] = [];
  let blobsRemoved = 0;
  let bytesFreed = 0;
  const packSizes = new Map<string, number>();
  for (const name of await backend.list(DATA_PREFIX)) {
    const id = packIdFromName(name);
    packSizes.set(id, (await backend.stat(name))?.size ?? 0);
    const entries = live.get(id) ?? [];
    const indexed = indexedCount.get(id) ?? 0;
    if (entries.length === 0) drop.push(id);
    else if (entries.length === indexed) keep.push({ id, entries });
    else repack.push(id);
    blobsRemoved += indexed - entries.length;
  }

  for (const id of live.keys()) {
    if (!packSizes.has(id)) throw new RepositoryDamagedError(`gc refused: pack ${id} holds referenced blobs but is missing; run vmbkp verify`);
  }

  // 2. Copy live blobs out of partly dead packs.
  const written: IndexedPack[] = [];
  const buffer = Buffer.allocUnsafeSlow(PACK_TARGET_SIZE);
  let builder = new PackBuilder(buffer);
  const flushBuilder = async () => {
    if (builder.count === 0) return;
    const p = builder.finish();
    await backend.put(packName(p.id), p.parts);
    written.push({ id: p.id, entries: p.entries });
    builder = new PackBuilder(buffer);
  };
  for (const id of repack) {
    const raw = await backend.get(packName(id));
    for (const e of live.get(id)!) {
      const hex = toHex(e.digest);
      const data = raw.subarray(e.offset, e.offset + e.length);
      checkedDecode(codec, data, { pack: id, ...e }, hex, 'gc');
      if (!builder.fits(data.length)) await flushBuilder();
      builder.add(e.digest, e.type, e.compression, e.rawLength, data);
    }
  }
  await flushBuilder();
  await failpoint('gc:packs-written');

  // 3–4. One index for everything live, then the old ones go.
  const oldIndexes = repo.indexFileNames();
  const nothingToDo = drop.length === 0 && repack.length === 0 && oldIndexes.length <= 1;
  if (!nothingToDo) {
    const raw = encodeIndexFile([...keep, ...written]);
    const newIndex = indexName(sha256(raw).toString('hex'));
    if (keep.length + written.length > 0 && !(await backend.stat(newIndex))) await backend.put(newIndex, raw);
    await failpoint('gc:index-written');
    for (const name of oldIndexes) if (name !== newIndex) await backend.remove(name);
    await failpoint('gc:indexes-removed');
    // 5. Data nothing points at any more.
    for (const id of [...drop, ...repack]) {
      bytesFreed += packSizes.get(id) ?? 0;
      await backend.remove(packName(id));
    }
  }
  bytesFreed -= written.reduce((n, p) => n + p.entries.reduce((m, e) => m + e.length, 0), 0);
  const uploadsSwept = await backend.sweep(24 * 3600_000);
  return { packsRemoved: drop.length, packsRepacked: repack.length, packsWritten: written.length, blobsRemoved, bytesFreed: Math.max(0, bytesFreed), uploadsSwept };
}
