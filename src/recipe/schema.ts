/**
 * The recipe model: what `vmbkp run RECIPE.yaml` does, as zod schemas with the defaults
 * applied. Objects are strict (a misspelt key is an error, not a silently ignored
 * setting). Rules that span keys are refinements for zod and `.meta()` for the JSON Schema,
 * which is generated from these schemas (see json-schema.ts).
 */
import { z } from 'zod';
import { isGenerationSelector } from '../jobs/select-generation.js';
import { checkSetName } from '../repository/layout.js';
import type { RetentionPolicy } from '../repository/retention.js';
import { connectionSchema } from '../providers/vsphere/recipe-connection.js';
import { globToRegExp } from './glob.js';
import { PROFILE_NAME } from './profile-name.js';
import { show } from './issues.js';
import { RATE_PATTERN, rateProblem, tryParseRate } from './rate.js';

const text = z.string().min(1);

export { connectionSchema };
const count = (min: number) => z.number().int().min(min);

/** Checked here so that a bad glob is reported with its line, not when VMs are selected. */
const glob = text.refine((p) => { try { globToRegExp(p); return true; } catch { return false; } }, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a valid glob: a range in [...] runs backwards`,
});

export const targetsSchema = z.strictObject({
  vms: z.array(glob).default([]).describe('VM names, globs (* ? [abc]) or morefs (vm-42)'),
  folders: z.array(text).default([]).describe('inventory folder paths: every VM under them'),
  exclude: z.array(glob).default([]).describe('globs on VM names, applied last'),
  excludeDisks: z.record(z.string(), z.array(count(0))).default({}).describe('disk device keys to skip, per VM name or moref'),
}).refine((t) => t.vms.length > 0 || t.folders.length > 0, { error: 'needs vms or folders to back up' }).meta({
  anyOf: [
    { required: ['vms'], properties: { vms: { minItems: 1 } } },
    { required: ['folders'], properties: { folders: { minItems: 1 } } },
  ],
});

/** keepLast is required: prune always keeps the newest generations. */
export const retentionSchema = z.strictObject({
  keepLast: count(1),
  keepDaily: count(0).optional(),
  keepWeekly: count(0).optional(),
  keepMonthly: count(0).optional(),
}).transform((r): RetentionPolicy => ({
  last: r.keepLast,
  ...(r.keepDaily !== undefined ? { daily: r.keepDaily } : {}),
  ...(r.keepWeekly !== undefined ? { weekly: r.keepWeekly } : {}),
  ...(r.keepMonthly !== undefined ? { monthly: r.keepMonthly } : {}),
}));

export const backupPolicySchema = z.strictObject({
  mode: z.enum(['auto', 'full', 'diff', 'incr']).default('auto'),
  quiesce: z.union([z.boolean(), z.literal('required')], { error: (iss) => `must be true, false or "required" (got ${show(iss.input)})` }).default(false)
    .describe('quiesce the guest file systems (VMware Tools): true warns when a VM could not be quiesced and keeps its crash-consistent backup, "required" fails that VM'),
  memory: z.boolean().default(false),
  enableCbt: z.boolean().default(false).describe('turn on changed-block tracking where it is off'),
  transport: z.enum(['https', 'nfc', 'vddk']).default('https'),
  vddk: z.strictObject({
    libdir: text.optional().describe("where VMware's VDDK is unpacked"),
    transports: text.optional().describe('VDDK transport modes, e.g. hotadd:nbdssl'),
  }).optional(),
  compressionLevel: count(1).max(19).optional().describe('zstd level'),
  diffEvery: count(1).optional().describe('every N-th backup of a disk reads it whole (a diff, even where incr is possible) and reports changes CBT missed'),
  retention: retentionSchema.optional().describe('prune each VM\'s set after its backup'),
}).refine((p) => p.vddk === undefined || p.transport === 'vddk', { path: ['vddk'], error: 'only applies with transport: vddk' }).meta({
  if: { required: ['vddk'] },
  then: { required: ['transport'], properties: { transport: { const: 'vddk' } } },
});

export const concurrencySchema = z.strictObject({
  vms: count(1).default(1).describe('VMs backed up at once'),
  disksPerVm: count(1).default(1).describe('disks read in parallel per VM'),
  snapshots: count(1).optional().describe('vmbkp snapshots open at once (default: vms)'),
}).transform((c) => ({ vms: c.vms, disksPerVm: c.disksPerVm, snapshots: c.snapshots ?? c.vms }));

/** A string is run by the shell; a list is a program and its arguments, run without one. */
const hook = z.union([text, z.array(text).min(1)], { error: 'must be a command string or a list of a program and its arguments' });

export const hooksSchema = z.strictObject({
  pre: z.array(hook).default([]).describe('commands run before each VM\'s backup (a string by /bin/sh, a list as program and arguments); one that fails fails that VM, which is then not backed up'),
  post: z.array(hook).default([]).describe('commands run after each VM\'s backup, told its result by VMBKP_RESULT; one that fails makes the VM\'s result a failure'),
  timeoutSeconds: count(1).optional().describe('stop a hook still running after this many seconds (it then counts as failed); default: no limit'),
});

export const reportSchema = z.strictObject({
  json: text.optional().describe('write the run report as JSON to this file'),
  summary: z.boolean().default(true).describe('print a summary at the end'),
});

/** Parsed to bytes per second. */
const rate = z.string({ error: (iss) => `must be a rate like 200MiB/s (got ${JSON.stringify(iss.input)})` })
  .regex(new RegExp(RATE_PATTERN), { error: (iss) => rateProblem(String(iss.input)) })
  .transform((s, ctx) => {
    const n = tryParseRate(s);
    if (n !== undefined) return n;
    ctx.issues.push({ code: 'custom', message: rateProblem(s), input: s });
    return z.NEVER;
  });

const REPOSITORY_PASSWORDS = ['passwordFile', 'passwordEnv', 'passwordCommand'] as const;

/**
 * The repository: its path, or a mapping with its path and where the password of an
 * encrypted repository comes from (at most one source; without one, vmbkp's own:
 * --repo-password-file, VMBKP_REPO_PASSWORD_FILE, VMBKP_REPO_PASSWORD_COMMAND). Either way
 * the result is the mapping.
 */
export const repositorySchema = z.union([
  text.describe('the repository path, or the name of a repository in the config file (a bare word: letters, digits, "-", "_")'),
  z.strictObject({
    path: text.describe('the repository path, or the name of a repository in the config file (a bare word: letters, digits, "-", "_")'),
    passwordFile: text.optional().describe('a file whose first line is the password of the (encrypted) repository'),
    passwordEnv: text.optional().describe('an environment variable holding the password of the repository'),
    passwordCommand: text.optional().describe('a command run by /bin/sh whose first line of output is the password of the repository'),
  }).superRefine((r, ctx) => {
    const given = REPOSITORY_PASSWORDS.filter((k) => r[k] !== undefined);
    if (given.length > 1) ctx.addIssue({ code: 'custom', path: [given[1]!], message: `give one of ${REPOSITORY_PASSWORDS.join(', ')}, not ${given.join(' and ')}` });
  }).meta({
    not: { anyOf: [
      { required: ['passwordFile', 'passwordEnv'] }, { required: ['passwordFile', 'passwordCommand'] }, { required: ['passwordEnv', 'passwordCommand'] },
    ] },
  }),
], {
  error: (iss) => (iss.code === 'invalid_union' && iss.input !== undefined
    ? `must be the repository's path, or a mapping with its path and at most one of ${REPOSITORY_PASSWORDS.join(', ')} (got ${show(iss.input)})` : undefined),
}).meta({ id: 'repository' }).transform((r) => (typeof r === 'string' ? { path: r } : r));

const common = {
  connection: connectionSchema,
  repository: repositorySchema,
};

/** A set name as repositories take it: checked here, so that a bad one is reported with its line. */
const setName = text.refine((s) => { try { checkSetName(s); return true; } catch { return false; } }, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a set name: letters, digits, ".", "_" and "-", not starting with "." or "-"`,
});

/** After the backups (and retention): the generations the other repository lacks copied there, as `vmbkp copy` does. */
export const copySchema = z.strictObject({
  to: repositorySchema,
  sets: z.array(setName).min(1).optional().describe('the sets to copy (default: the set of every VM this run backed up)'),
});

export const backupRecipeSchema = z.strictObject({
  version: z.literal(1),
  kind: z.literal('backup'),
  ...common,
  targets: targetsSchema,
  policy: backupPolicySchema.prefault({}),
  concurrency: concurrencySchema.prefault({}),
  bandwidth: rate.optional().describe('total limit over all streams: a number, B|kB|KB|KiB|MB|MiB|GB|GiB, /s'),
  hooks: hooksSchema.prefault({}),
  copy: copySchema.optional().describe('after the backups and retention, copy the generations the repository `to` lacks there (an off-site copy): its path, or a mapping with its path and password source'),
  report: reportSchema.prefault({}),
});

const GENERATION_ERROR = 'must be a generation number, "latest", "latest~N", a date or date-time, or an id prefix';

export const restoreSchema = z.strictObject({
  set: text,
  generation: z.union([count(1), z.string().refine(isGenerationSelector, { error: GENERATION_ERROR })], { error: GENERATION_ERROR })
    .describe('a generation number, latest, latest~N, a date or date-time (2026-11-20, 2026-11-20T14:00, optionally with Z or +01:00), or 4 or more hex digits of the generation id'),
  name: text.describe('the name of the restored VM'),
  datastore: text.optional(),
  host: text.optional(),
  folder: text.optional(),
  resourcePool: text.optional(),
  network: z.record(z.string(), text).optional().describe('old network name: new network name'),
  powerOn: z.boolean().default(false),
  keepIdentity: z.boolean().default(false).describe('keep the BIOS and instance UUIDs and MAC addresses'),
  overwrite: z.boolean().default(false).describe('write the disks of the existing powered-off VM of that name'),
});

export const restoreRecipeSchema = z.strictObject({
  version: z.literal(1),
  kind: z.literal('restore'),
  ...common,
  transport: z.enum(['https', 'vddk']).default('https'),
  vddk: z.strictObject({
    libdir: text.optional().describe("where VMware's VDDK is unpacked"),
    transports: text.optional().describe('VDDK transport modes, e.g. hotadd:nbdssl'),
  }).optional(),
  restores: z.array(restoreSchema).min(1).describe('VMs restored one after the other; one failing does not stop the others'),
  report: reportSchema.prefault({}),
}).refine((r) => r.vddk === undefined || r.transport === 'vddk', { path: ['vddk'], error: 'only applies with transport: vddk' }).meta({
  if: { required: ['vddk'] },
  then: { required: ['transport'], properties: { transport: { const: 'vddk' } } },
});

/**
 * `connection: NAME`: a vCenter of the config file, resolved when the recipe runs (the
 * profile as written; environment variables do not change a recipe's connection). A
 * recipe names its connection one way or the other, so load.ts picks the variant by the
 * value's type: a union would blur a mapping's own errors into "is not valid here".
 */
export const connectionProfileSchema = z.string().regex(PROFILE_NAME, {
  error: (iss) => `must be the name of a vCenter in the config file (letters, digits, "-", "_") or a mapping with vcenter, user and a password source (got ${show(iss.input)})`,
}).describe('the name of a vCenter in the config file (vmbkp config show lists them)');

export const backupRecipeByProfileSchema = backupRecipeSchema.extend({ connection: connectionProfileSchema });
// safeExtend keeps the refinements; its types want the key's type to narrow, which a name instead of a mapping does not.
export const restoreRecipeByProfileSchema = (restoreRecipeSchema as unknown as z.ZodObject<Omit<typeof restoreRecipeSchema.shape, 'connection'>>)
  .safeExtend({ connection: connectionProfileSchema });

/** Both ways to give the connection, for the JSON Schema. */
const eitherConnection = z.union([connectionSchema, connectionProfileSchema]);
export const recipeSchema = z.discriminatedUnion('kind', [
  backupRecipeSchema.extend({ connection: eitherConnection }),
  (restoreRecipeSchema as unknown as z.ZodObject<Omit<typeof restoreRecipeSchema.shape, 'connection'>>).safeExtend({ connection: eitherConnection })
    .meta(restoreRecipeSchema.meta() ?? {}),
]);

export type Connection = z.output<typeof connectionSchema>;
export type RecipeRepository = z.output<typeof repositorySchema>;
export type Targets = z.output<typeof targetsSchema>;
export type BackupPolicy = z.output<typeof backupPolicySchema>;
export type Concurrency = z.output<typeof concurrencySchema>;
export type Hook = z.output<typeof hook>;
export type Hooks = z.output<typeof hooksSchema>;
export type Report = z.output<typeof reportSchema>;
export type RecipeCopy = z.output<typeof copySchema>;
export type BackupRecipe = z.output<typeof backupRecipeSchema> | z.output<typeof backupRecipeByProfileSchema>;
export type RestoreItem = z.output<typeof restoreSchema>;
export type RestoreRecipe = z.output<typeof restoreRecipeSchema> | z.output<typeof restoreRecipeByProfileSchema>;
export type Recipe = BackupRecipe | RestoreRecipe;
