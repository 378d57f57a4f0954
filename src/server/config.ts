/**
 * The server's config file (YAML): where it listens, its TLS certificate, where its state
 * lives, the repositories the API shows, the recipes it runs on schedules and where alerts
 * go. Objects are strict like the CLI's config: a misspelt key is an error with its line.
 * The file names where secrets are (password files), never a secret itself.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Cron } from 'croner';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { InputError, UsageError, describeCause } from '../errors.js';
import { zodIssues } from '../recipe/issues.js';
import { lineOf } from '../recipe/lines.js';

const text = z.string().min(1);
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const name = z.string().regex(NAME, { error: (iss) => `${JSON.stringify(iss.input)} is not a name: letters, digits, "-" and "_"` });

/** host:port; an IPv6 host in brackets. */
const listen = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, {
  error: (iss) => `must be HOST:PORT, e.g. 127.0.0.1:8443 (got ${JSON.stringify(iss.input)})`,
});

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** 5 fields, or 6 with seconds first (croner's syntax). */
function cronProblem(expr: string): string | undefined {
  try {
    new Cron(expr, { paused: true, mode: '5-or-6-parts' });
    return undefined;
  } catch (err) {
    return describeCause(err);
  }
}

export const scheduleSchema = z.strictObject({
  name,
  recipe: text.describe('a backup or restore recipe file (relative paths: to the server config file)'),
  cron: text.superRefine((s, ctx) => {
    const p = cronProblem(s);
    if (p) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} is not a cron expression: ${p}` });
  }).describe('minute hour day-of-month month day-of-week, or with seconds first (6 fields)'),
  timezone: text.refine(validTimezone, { error: (iss) => `${JSON.stringify(iss.input)} is not a time zone (e.g. Europe/Berlin, UTC)` }).default('UTC'),
});

export const serverRepositorySchema = z.strictObject({
  name,
  repo: text.describe('a directory, or s3:https://HOST[:PORT]/BUCKET[/PREFIX]'),
  passwordFile: text.optional().describe('a file whose first line is the password of the (encrypted) repository'),
});

export const serverConfigSchema = z.strictObject({
  listen: listen.default('127.0.0.1:8443'),
  tls: z.strictObject({ cert: text, key: text }).optional().describe('PEM files; without them a self-signed certificate is generated in stateDir'),
  stateDir: text.describe('the database (vmbkp.db) and a generated certificate'),
  config: text.optional().describe('the vmbkp config file of named vCenters and repositories, for recipes that name profiles'),
  repositories: z.array(serverRepositorySchema).default([]),
  schedules: z.array(scheduleSchema).default([]),
  recipes: z.array(text).default([]).describe('recipe files that may also be run on demand (POST /api/v1/jobs), besides those of schedules'),
  alerts: z.strictObject({
    webhook: z.url({ protocol: /^https?$/ }).optional().describe('POSTed a JSON message on every failed or missed run'),
  }).default({}),
}).superRefine((c, ctx) => {
  const dup = (what: 'repositories' | 'schedules') => {
    const seen = new Set<string>();
    c[what].forEach((x, i) => {
      if (seen.has(x.name)) ctx.addIssue({ code: 'custom', path: [what, i, 'name'], message: `${JSON.stringify(x.name)} is named twice` });
      seen.add(x.name);
    });
  };
  dup('repositories');
  dup('schedules');
});

export type ServerConfig = z.output<typeof serverConfigSchema>;
export type Schedule = z.output<typeof scheduleSchema>;
export type ServerRepository = z.output<typeof serverRepositorySchema>;

/** Relative paths in the file are relative to the file, so the server may start from anywhere. */
function resolvePaths(c: ServerConfig, dir: string): ServerConfig {
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.resolve(dir, p));
  const local = (p: string) => (/^s3:/.test(p) ? p : abs(p));
  return {
    ...c,
    stateDir: abs(c.stateDir),
    ...(c.tls ? { tls: { cert: abs(c.tls.cert), key: abs(c.tls.key) } } : {}),
    ...(c.config !== undefined ? { config: abs(c.config) } : {}),
    repositories: c.repositories.map((r) => ({ ...r, repo: local(r.repo), ...(r.passwordFile !== undefined ? { passwordFile: abs(r.passwordFile) } : {}) })),
    schedules: c.schedules.map((s) => ({ ...s, recipe: abs(s.recipe) })),
    recipes: c.recipes.map(abs),
  };
}

export function parseServerConfig(textIn: string, file: string): ServerConfig {
  const lc = new LineCounter();
  const doc = parseDocument(textIn, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new InputError(`server config ${file}: line ${lc.linePos(e.pos[0]).line}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  const data: unknown = doc.toJS() ?? {};
  const r = zodIssues(serverConfigSchema, data);
  if ('value' in r) return resolvePaths(r.value, path.dirname(path.resolve(file)));
  const first = r.issues[0]!;
  const more = r.issues.length > 1 ? ` (and ${r.issues.length - 1} more)` : '';
  throw new InputError(`server config ${file}: line ${lineOf(doc, lc, first.path, first.atKey)}: ${first.message.replace(/^the recipe is required$/, 'is required')}${more}`);
}

export async function loadServerConfig(file: string): Promise<ServerConfig> {
  let t: string;
  try {
    t = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`server config ${file} does not exist`);
    throw new InputError(`reading server config ${file} failed: ${describeCause(err)}`, { cause: err });
  }
  return parseServerConfig(t, file);
}
