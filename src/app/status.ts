/**
 * `vmbkp status`: a repository at a glance, from what is cheap to read — one sized listing
 * of every object, the index files (which every command reads), the generation manifests,
 * the locks and the maintenance records (records.ts). No pack is read.
 *
 * The figures (README "Status at a glance" says the same):
 * - size on disk: the sum of the sizes of every object the storage lists;
 * - logical size: the sum over all generations of their disks' sizes, what restoring every
 *   generation would write;
 * - unique data: the plain (before compression) size of the distinct chunks stored (zero
 *   chunks are never stored);
 * - dedup ratio = logical size / unique data (zero chunks count as deduplicated);
 * - compression ratio = unique data / the stored size of those chunks.
 */
import { mapConcurrently } from '../concurrency.js';
import { type GenerationManifest } from '../repository/generation.js';
import { DATA_PREFIX, GENERATIONS_PREFIX, INDEX_PREFIX, KEYS_PREFIX, LOCKS_PREFIX, RECORDS_PREFIX } from '../repository/layout.js';
import { readLocks } from '../repository/lock.js';
import { BlobType } from '../repository/pack.js';
import { newestRecord } from '../repository/records.js';
import type { Repository } from '../repository/repository.js';
import { listObjectSizes } from '../storage/backend.js';
import { isS3Location } from '../storage/s3-location.js';
import { machineSummary } from '../providers/machine-summary.js';

/** Manifests read at once: on object storage each is a round trip. */
const MANIFEST_READS = 8;

export interface ObjectGroup { objects: number; bytes: number }

export interface SetStatus {
  readonly name: string;
  readonly generations: number;
  /** Sum of the disk sizes of the set's generations. */
  readonly logicalBytes: number;
  readonly newest: {
    readonly generation: number; readonly id: string; readonly started: string; readonly finished: string;
    /** Seconds from the newest generation's end to now (the reader's clock). */
    readonly ageSeconds: number;
    readonly mode: string;
    readonly disks: { readonly name: string; readonly mode: string; readonly size: number }[];
    readonly consistency?: string;
  };
  /** Generations of this set the last verify found problems in (that still exist); null when no verify is recorded. */
  readonly failedVerify: number[] | null;
}

export interface LockStatus {
  readonly name: string;
  /** Absent when the lock object does not open or parse (unreadable). */
  readonly kind?: string; readonly operation?: string; readonly host?: string; readonly pid?: number;
  /** When the holder took it (its first write; locks of older versions: its last refresh). */
  readonly since?: string;
  /** When the holder last rewrote it. */
  readonly refreshed?: string;
  readonly stale: boolean;
}

export interface RepositoryStatus {
  readonly repository: {
    readonly location: string; readonly kind: 'local' | 's3'; readonly id: string; readonly created: string;
    readonly encrypted: boolean; readonly chunkSize: number;
    readonly objectLock?: { readonly mode: string; readonly days: number };
  };
  /** Every listed object: total, and by kind (packs, index files, generations, keys, locks, records, other). */
  readonly storage: { readonly objects: number; readonly bytes: number; readonly byKind: Record<string, ObjectGroup> };
  readonly data: {
    readonly packs: number;
    readonly indexFiles: number;
    readonly chunks: number;
    readonly indexPieces: number;
    readonly uniqueBytes: number;
    readonly chunkBytesStored: number;
  };
  readonly logicalBytes: number;
  /** null when there is nothing to divide by (no data stored). */
  readonly dedupRatio: number | null;
  readonly compressionRatio: number | null;
  readonly sets: SetStatus[];
  readonly generations: number;
  readonly verify: null | {
    readonly time: string; readonly ageSeconds: number; readonly readData: boolean; readonly ok: boolean;
    readonly generations: number; readonly problems: number;
    /** Generations a problem named, and whether each still exists. */
    readonly failed: { readonly set: string; readonly generation: number; readonly exists: boolean }[];
  };
  readonly gc: null | { readonly time: string; readonly ageSeconds: number; readonly packsRemoved: number; readonly bytesFreed: number };
  readonly locks: LockStatus[];
}

const KINDS: [string, string][] = [
  [DATA_PREFIX, 'packs'], [INDEX_PREFIX, 'index'], [GENERATIONS_PREFIX, 'generations'],
  [KEYS_PREFIX, 'keys'], [LOCKS_PREFIX, 'locks'], [RECORDS_PREFIX, 'records'],
];

function kindOf(name: string): string {
  for (const [prefix, kind] of KINDS) if (name.startsWith(prefix)) return kind;
  return name === 'config' ? 'config' : 'other';
}

function ageSeconds(iso: string, now: number): number {
  return Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
}

function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}

export async function repositoryStatus(repo: Repository, now = Date.now()): Promise<RepositoryStatus> {
  const listing = await listObjectSizes(repo.backend, '');
  const byKind: Record<string, ObjectGroup> = {};
  let bytes = 0;
  for (const o of listing) {
    const g = byKind[kindOf(o.name)] ??= { objects: 0, bytes: 0 };
    g.objects++;
    g.bytes += o.size;
    bytes += o.size;
  }

  await repo.loadIndex();
  let chunks = 0, indexPieces = 0, uniqueBytes = 0, chunkBytesStored = 0;
  for (const [, loc] of repo.entries()) {
    if (loc.type === BlobType.Chunk) {
      chunks++;
      uniqueBytes += loc.rawLength;
      chunkBytesStored += loc.length;
    } else {
      indexPieces++;
    }
  }

  const refs = await repo.listGenerations();
  const manifests = await mapConcurrently(refs, MANIFEST_READS, (r) => repo.readGeneration(r.set, r.generation));
  const bySet = new Map<string, GenerationManifest[]>();
  for (const m of manifests) bySet.set(m.set, [...(bySet.get(m.set) ?? []), m]);
  const logicalOf = (m: GenerationManifest) => m.disks.reduce((n, d) => n + d.size, 0);
  const logicalBytes = manifests.reduce((n, m) => n + logicalOf(m), 0);

  const verifyRecord = await newestRecord(repo, 'verify');
  const gcRecord = await newestRecord(repo, 'gc');
  const exists = (set: string, generation: number) => refs.some((r) => r.set === set && r.generation === generation);

  const sets: SetStatus[] = [...bySet].map(([name, gens]) => {
    const newest = gens[gens.length - 1]!;
    const machine = machineSummary(newest.machine);
    return {
      name,
      generations: gens.length,
      logicalBytes: gens.reduce((n, m) => n + logicalOf(m), 0),
      newest: {
        generation: newest.generation, id: newest.id, started: newest.started, finished: newest.finished,
        ageSeconds: ageSeconds(newest.finished, now), mode: newest.mode,
        disks: newest.disks.map((d) => ({ name: d.name, mode: d.mode, size: d.size })),
        ...(machine?.consistency ? { consistency: machine.consistency } : {}),
      },
      failedVerify: verifyRecord
        ? verifyRecord.failed.filter((f) => f.set === name && exists(f.set, f.generation)).map((f) => f.generation)
        : null,
    };
  });

  const locks: LockStatus[] = (await readLocks(repo)).map((l) => (l.record
    ? {
      name: l.name, kind: l.record.kind, operation: l.record.operation, host: l.record.host, pid: l.record.pid,
      since: l.record.since ?? l.record.time, refreshed: l.record.time, stale: l.stale,
    }
    : { name: l.name, stale: l.stale }));

  const { config } = repo;
  return {
    repository: {
      location: repo.location, kind: isS3Location(repo.location) ? 's3' : 'local', id: config.id, created: config.created,
      encrypted: repo.encrypted, chunkSize: config.chunkSize,
      ...(config.objectLock ? { objectLock: config.objectLock } : {}),
    },
    storage: { objects: listing.length, bytes, byKind },
    data: { packs: byKind['packs']?.objects ?? 0, indexFiles: byKind['index']?.objects ?? 0, chunks, indexPieces, uniqueBytes, chunkBytesStored },
    logicalBytes,
    dedupRatio: ratio(logicalBytes, uniqueBytes),
    compressionRatio: ratio(uniqueBytes, chunkBytesStored),
    sets,
    generations: refs.length,
    verify: verifyRecord
      ? {
        time: verifyRecord.time, ageSeconds: ageSeconds(verifyRecord.time, now), readData: verifyRecord.readData, ok: verifyRecord.ok,
        generations: verifyRecord.generations, problems: verifyRecord.problems,
        failed: verifyRecord.failed.map((f) => ({ ...f, exists: exists(f.set, f.generation) })),
      }
      : null,
    gc: gcRecord ? { time: gcRecord.time, ageSeconds: ageSeconds(gcRecord.time, now), packsRemoved: gcRecord.packsRemoved, bytesFreed: gcRecord.bytesFreed } : null,
    locks,
  };
}
