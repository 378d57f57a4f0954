/**
 * A generation's manifest: the one object that makes a generation exist. It is written
 * last, write-once, after every blob it names is durable, so a crash never leaves a
 * generation that points at missing data.
 */
import { z } from 'zod';
import { RepositoryDamagedError } from '../errors.js';
import { REQUESTED_MODES } from './requested-mode.js';

export const BackupMode = z.enum(['full', 'diff', 'incr']);
export type BackupMode = z.infer<typeof BackupMode>;
export const RequestedMode = z.enum(REQUESTED_MODES);
export type RequestedMode = z.infer<typeof RequestedMode>;

/** The manifest's own version: unchanged by encryption (which seals it whole). */
export const MANIFEST_VERSION = 1;

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const DiskStats = z.object({
  /** Bytes read from the source. */
  bytesRead: z.number().int().nonnegative(),
  /** Bytes this generation added to the repository (compressed chunks and index pieces). */
  bytesStored: z.number().int().nonnegative(),
  chunks: z.number().int().nonnegative(),
  chunksZero: z.number().int().nonnegative(),
  chunksStored: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
}).strict();
export type DiskStats = z.infer<typeof DiskStats>;

const DiskRecord = z.object({
  name: z.string(),
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  /** Digests of the index pieces, in order: together they list every chunk of the disk. */
  index: z.array(Hex64),
  mode: BackupMode,
  source: z.string(),
  /** Opaque token that a later incr of this disk passes to the source (e.g. a vSphere changeId). */
  changeToken: z.string().optional(),
  /** Why a requested mode was not used ("no previous generation", …). */
  note: z.string().optional(),
  /**
   * Backups of this disk in incr mode since the last one that read it whole (full or diff):
   * 0 after a full read. Counts toward --diff-every; absent where unknown (an older vmbkp).
   */
  incrsSinceFullRead: z.number().int().nonnegative().optional(),
  /**
   * A diff that also asked the source for its changes (--diff-every): bytes of the chunks
   * that differ from the previous generation outside every reported change, i.e. what the
   * change tracking missed (0 when it missed nothing).
   */
  cbtMissedBytes: z.number().int().nonnegative().optional(),
  stats: DiskStats,
}).strict();
export type DiskRecord = z.infer<typeof DiskRecord>;

const Manifest = z.object({
  version: z.literal(MANIFEST_VERSION),
  set: z.string(),
  generation: z.number().int().positive(),
  id: z.string().uuid(),
  started: z.string(),
  finished: z.string(),
  mode: RequestedMode,
  disks: z.array(DiskRecord),
  /** Opaque description of the machine the disks belong to (VM configuration later). */
  machine: z.unknown().optional(),
}).strict();
export type GenerationManifest = z.infer<typeof Manifest>;

export function encodeManifest(m: GenerationManifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 1) + '\n');
}

export function decodeManifest(raw: Buffer, name: string): GenerationManifest {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new RepositoryDamagedError(`reading generation ${name} failed: not valid JSON`, { cause: err });
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RepositoryDamagedError(`reading generation ${name} failed: ${issue?.path.join('.') || 'manifest'}: ${issue?.message}`);
  }
  return parsed.data;
}
