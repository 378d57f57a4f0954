/**
 * The request bodies of the resource jobs (verify, prune, restore-disk, restore-vm) and of
 * their previews, checked: a wrong body is a 400 naming the field, before any job starts.
 * What the repository alone can tell (does the set exist?) is told by the preview, or
 * fails the job.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AlreadyExistsError, InputError } from '../errors.js';
import type { RetentionPolicy } from '../repository/retention.js';

const name = z.string().min(1);
/** A number, latest, latest~N, a date or an id prefix, as the CLI's --generation takes it. */
const generation = z.union([z.string().min(1), z.number().int().positive()]).default('latest').transform(String);
/** The body names its kind; the runner has already chosen by it. */
const kind = (k: string) => z.literal(k).optional();

function parse<T extends z.ZodType>(schema: T, what: string, body: unknown): z.infer<T> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? issue.path.join('.') : 'the body';
  throw new InputError(`${what}: ${where}: ${issue.message}`);
}

const verifySchema = z.strictObject({ kind: kind('verify'), repository: name, readData: z.boolean().default(false) });
export type VerifyParams = z.infer<typeof verifySchema>;
export const parseVerify = (body: unknown): VerifyParams => parse(verifySchema, 'verify', body);

const keepSchema = z.strictObject({
  last: z.number().int().min(1), daily: z.number().int().min(0).optional(),
  weekly: z.number().int().min(0).optional(), monthly: z.number().int().min(0).optional(),
});
const pruneSchema = z.strictObject({
  kind: kind('prune'), repository: name,
  dryRun: z.boolean(),
  /** One set (with keep), or every set: each by keep, a backup recipe's retention, or the repository profile's retention. */
  set: name.optional(),
  keep: keepSchema.optional(),
  recipe: name.optional(),
  gc: z.boolean().default(true),
});
export type PruneParams = z.infer<typeof pruneSchema>;
export function parsePrune(body: unknown, preview = false): PruneParams {
  // A preview is a dry run whatever the body says; the body may leave dryRun out.
  const p = parse(pruneSchema, 'prune', preview && body !== null && typeof body === 'object' ? { ...body, dryRun: true } : body);
  if (p.set !== undefined && !p.keep) throw new InputError('prune: a set needs keep: {last: N} (the policy it is pruned by)');
  if (p.set !== undefined && p.recipe !== undefined) throw new InputError('prune: recipe gives the policies of every set: give set or recipe, not both');
  return p;
}

export function keepPolicy(k: NonNullable<PruneParams['keep']>): RetentionPolicy {
  return {
    last: k.last, ...(k.daily !== undefined ? { daily: k.daily } : {}),
    ...(k.weekly !== undefined ? { weekly: k.weekly } : {}), ...(k.monthly !== undefined ? { monthly: k.monthly } : {}),
  };
}

const restoreDiskSchema = z.strictObject({
  kind: kind('restore-disk'), repository: name, set: name, generation, disk: name,
  /** An absolute path on the server's host: a sparse raw image (or qcow2 with format). */
  to: name,
  format: z.enum(['raw', 'qcow2']).default('raw'),
  overwrite: z.boolean().default(false),
});
export type RestoreDiskParams = z.infer<typeof restoreDiskSchema>;

/**
 * The target must be absolute (a relative one would land wherever the server was started)
 * and, unless overwrite, must not exist: the CLI's codes, INPUT_INVALID and ALREADY_EXISTS.
 */
export function parseRestoreDisk(body: unknown, preview = false): RestoreDiskParams {
  const p = parse(restoreDiskSchema, 'restore-disk', body);
  if (!path.isAbsolute(p.to)) throw new InputError(`restore-disk: to ${JSON.stringify(p.to)} is not an absolute path`);
  // A preview reports an existing target (and that it would be refused) rather than failing.
  if (!preview && !p.overwrite && existsSync(p.to)) {
    throw new AlreadyExistsError(`restoring to ${p.to} refused: the file exists (set overwrite: true to replace it)`);
  }
  return p;
}

/** The target URI the CLI's --to would be. */
export const diskTargetUri = (p: RestoreDiskParams): string => `${p.format === 'qcow2' ? 'qcow2' : 'file'}:${p.to}`;

const restoreVmSchema = z.strictObject({
  kind: kind('restore-vm'), repository: name, set: name, generation,
  /** A vCenter named in the vmbkp config file the server config names (`config:`). */
  vcenter: name,
  name,
  host: name.optional(), datastore: name.optional(), folder: name.optional(), resourcePool: name.optional(),
  /** NICs on network OLD connected to NEW, as --network OLD=NEW. */
  network: z.record(z.string().min(1), z.string().min(1)).optional(),
  powerOn: z.boolean().default(false),
  keepIdentity: z.boolean().default(false),
  overwrite: z.boolean().default(false),
  transport: z.enum(['https', 'nfc', 'vddk']).default('https'),
  vddkLibdir: name.optional(), vddkTransports: name.optional(),
  disksAtOnce: z.number().int().min(1).default(1),
});
export type RestoreVmParams = z.infer<typeof restoreVmSchema>;
export const parseRestoreVm = (body: unknown): RestoreVmParams => parse(restoreVmSchema, 'restore-vm', body);
