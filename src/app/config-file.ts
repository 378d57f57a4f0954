/**
 * Finding and reading the config file: --config FILE, else $VMBKP_CONFIG, else
 * ~/.config/vmbkp/config.yaml, else /etc/vmbkp/config.yaml. A file named explicitly (the
 * flag or the variable) must exist; a missing default file just means no profiles. Every
 * problem names the file, its line and the field, as recipes' do.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { InputError, UsageError, describeCause } from '../errors.js';
import { type RecipeIssue, pathText, show, zodIssues } from '../recipe/issues.js';
import { lineOf } from '../recipe/lines.js';
import { type ConfigData, configSchema } from './config-schema.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The config in effect: where it came from, and its profiles (none without a file). */
export interface LoadedConfig {
  /** The file read; undefined when no file was given and no default file exists. */
  readonly file: string | undefined;
  /** How the file was chosen: "--config", "VMBKP_CONFIG", "default". */
  readonly source: 'flag' | 'env' | 'default';
  /** The places looked at, in order (for config show and messages). */
  readonly searched: readonly string[];
  readonly data: ConfigData;
}

/** The default places, in order: the user's, then the host's. */
export function defaultConfigFiles(env: Env = process.env): string[] {
  const xdg = env['XDG_CONFIG_HOME'];
  const home = env['HOME'] || homedir();
  return [path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.config'), 'vmbkp/config.yaml'), '/etc/vmbkp/config.yaml'];
}

export type ConfigValidation = { readonly ok: true; readonly data: ConfigData } | { readonly ok: false; readonly issues: RecipeIssue[] };

/** The YAML parser, loaded when there is a config file to parse: most runs have none. */
const loadYaml = (): typeof import('yaml') => (createRequire(import.meta.url) as (id: 'yaml') => typeof import('yaml'))('yaml');

/** Validates config text; the issues are in file order. */
export function validateConfig(text: string): ConfigValidation {
  const { LineCounter, parseDocument } = loadYaml();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    return { ok: false, issues: doc.errors.map((e) => ({ path: '', line: lc.linePos(e.pos[0]).line, message: `YAML syntax error: ${e.message.split('\n')[0]}` })) };
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    return { ok: false, issues: [{ path: '', line: 1, message: `YAML error: ${describeCause(err)}` }] };
  }
  // An empty file is a valid config without profiles.
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { ok: false, issues: [{ path: '', line: 1, message: `the config must be a mapping of vcenters, repositories and defaults (got ${show(data)})` }] };
  }
  const r = zodIssues(configSchema, data);
  if ('value' in r) return { ok: true, data: r.value };
  const issues = r.issues.map((i) => ({ path: pathText(i.path), line: lineOf(doc, lc, i.path, i.atKey), message: i.message.replace(/^the recipe is required$/, 'is required') }));
  return { ok: false, issues: issues.sort((a, b) => a.line - b.line) };
}

/** The config in `text`; InputError naming the file, the line and the field of the first problem. */
export function parseConfig(text: string, file: string): ConfigData {
  const r = validateConfig(text);
  if (r.ok) return r.data;
  const first = r.issues[0]!;
  const more = r.issues.length > 1 ? ` (and ${r.issues.length - 1} more)` : '';
  throw new InputError(`config ${file}: line ${first.line}: ${first.message}${more}`);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`reading config ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}

/** Finds and reads the config (`flag`: the value of --config). */
export async function loadConfig(flag: string | undefined, env: Env = process.env): Promise<LoadedConfig> {
  const explicit = flag !== undefined ? { file: flag, source: 'flag' as const, what: '--config' }
    : env['VMBKP_CONFIG'] ? { file: env['VMBKP_CONFIG'], source: 'env' as const, what: 'VMBKP_CONFIG' } : undefined;
  if (explicit) {
    if (explicit.file === '') throw new UsageError('--config needs a file');
    const text = await readIfExists(explicit.file);
    if (text === undefined) throw new UsageError(`config ${explicit.file} (${explicit.what}) does not exist`);
    return { file: explicit.file, source: explicit.source, searched: [explicit.file], data: parseConfig(text, explicit.file) };
  }
  const searched = defaultConfigFiles(env);
  for (const file of searched) {
    const text = await readIfExists(file);
    if (text !== undefined) return { file, source: 'default', searched, data: parseConfig(text, file) };
  }
  return { file: undefined, source: 'default', searched, data: { vcenters: {}, repositories: {}, defaults: {} } };
}
