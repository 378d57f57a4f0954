/**
 * Parsing and validating the config file's text (YAML against config-schema.ts), with the
 * line of every problem. Loaded only when a config file exists (config-file.ts).
 */
import { createRequire } from 'node:module';
import { InputError, describeCause } from '../errors.js';
import { type RecipeIssue, pathText, show, zodIssues } from '../recipe/issues.js';
import { lineOf } from '../recipe/lines.js';
import { type ConfigData, configSchema } from './config-schema.js';

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
