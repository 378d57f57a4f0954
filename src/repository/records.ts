/**
 * Maintenance records: what the last verify and gc found, so that `vmbkp status` can say
 * when they ran and which generations failed verify without reading any data. One object
 * per run, `records/<kind>/<time>-<random>` (docs/format.md), sealed like a lock in an
 * encrypted repository (a verify record names sets). Objects are write-once, so a new
 * record is written and the older ones of its kind removed; a record that cannot be
 * removed (an object lock keeps it) stays, and readers take the newest. A repository
 * without records (older vmbkp) has never been verified or collected as far as status knows.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError, RepositoryDamagedError } from '../errors.js';
import { RECORDS_PREFIX } from './layout.js';
import type { LockSpace } from './lock.js';

const VerifyRecord = z.object({
  kind: z.literal('verify'),
  time: z.string(),
  readData: z.boolean(),
  ok: z.boolean(),
  generations: z.number().int().nonnegative(),
  problems: z.number().int().nonnegative(),
  /** Generations a problem names (a problem that names none, a damaged index file say, counts in `problems` only). */
  failed: z.array(z.object({ set: z.string(), generation: z.number().int().positive() }).strict()),
}).strict();
export type VerifyRecord = z.infer<typeof VerifyRecord>;

const GcRecord = z.object({
  kind: z.literal('gc'),
  time: z.string(),
  packsRemoved: z.number().int().nonnegative(),
  bytesFreed: z.number().int().nonnegative(),
}).strict();
export type GcRecord = z.infer<typeof GcRecord>;

type RecordOf<K extends string> = K extends 'verify' ? VerifyRecord : GcRecord;
const SCHEMAS = { verify: VerifyRecord, gc: GcRecord } as const;

/** Sorts by time: "20261130T072800123Z" from an ISO time. */
function stamp(iso: string): string {
  return iso.replace(/[-:.]/g, '');
}

/** Writes a record, then removes the older ones of its kind (best effort: a failed removal leaves one more to read past). */
export async function writeRecord(space: LockSpace, record: VerifyRecord | GcRecord): Promise<void> {
  const prefix = `${RECORDS_PREFIX}${record.kind}/`;
  const name = `${prefix}${stamp(record.time)}-${randomBytes(6).toString('hex')}`;
  await space.backend.put(name, space.objects.seal(name, Buffer.from(JSON.stringify(record) + '\n')));
  for (const old of await space.backend.list(prefix)) {
    if (old !== name && old < name) await space.backend.remove(old).catch(() => {});
  }
}

/** The newest readable record of a kind, or undefined when there is none. A damaged one is passed over for an older one. */
export async function newestRecord<K extends 'verify' | 'gc'>(space: LockSpace, kind: K): Promise<RecordOf<K> | undefined> {
  const names = (await space.backend.list(`${RECORDS_PREFIX}${kind}/`)).sort().reverse();
  for (const name of names) {
    try {
      const plain = space.objects.open(name, name, await space.backend.get(name));
      const parsed = SCHEMAS[kind].safeParse(JSON.parse(plain.toString('utf8')));
      if (parsed.success) return parsed.data as RecordOf<K>;
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof RepositoryDamagedError || err instanceof SyntaxError)) throw err;
    }
  }
  return undefined;
}
