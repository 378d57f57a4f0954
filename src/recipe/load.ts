/**
 * Reading a recipe: YAML with positions kept, then the schema of its kind. Every problem
 * is collected with its field path and line; callers that stop at the first get an
 * InputError naming the file, the line and how many more there are.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { InputError, describeCause } from '../errors.js';
import { type RecipeIssue, pathText, show, zodIssues } from './issues.js';
import { lineOf } from './lines.js';
import { type Recipe, backupRecipeByProfileSchema, backupRecipeSchema, restoreRecipeByProfileSchema, restoreRecipeSchema } from './schema.js';

export type { RecipeIssue } from './issues.js';

export type RecipeValidation = { readonly ok: true; readonly recipe: Recipe } | { readonly ok: false; readonly issues: RecipeIssue[] };

const KINDS = { backup: backupRecipeSchema, restore: restoreRecipeSchema } as const;
/** The same, with `connection: NAME` (a vCenter of the config file). */
const BY_PROFILE = { backup: backupRecipeByProfileSchema, restore: restoreRecipeByProfileSchema } as const;

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates recipe text; the issues are in file order. */
export function validateRecipe(text: string): RecipeValidation {
  const lc = new LineCounter();
  // prettyErrors off: messages without the code excerpt, which would not fit on one line.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => ({ path: '', line: lc.linePos(e.pos[0]).line, message: `YAML syntax error: ${e.message.split('\n')[0]}` })),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    return { ok: false, issues: [{ path: '', line: 1, message: `YAML error: ${describeCause(err)}` }] };
  }

  const issue = (path: PropertyKey[], message: string, atKey = false): RecipeIssue =>
    ({ path: pathText(path), line: lineOf(doc, lc, path, atKey), message });
  if (data === null || data === undefined) return { ok: false, issues: [issue([], 'the recipe is empty')] };
  if (!isMapping(data)) return { ok: false, issues: [issue([], `the recipe must be a mapping of keys like version, kind, connection (got ${show(data)})`)] };

  const kind = data['kind'];
  const kinds = typeof data['connection'] === 'string' ? BY_PROFILE : KINDS;
  const schema = typeof kind === 'string' && Object.hasOwn(kinds, kind) ? kinds[kind as keyof typeof kinds] : undefined;
  if (!schema) {
    const message = kind === undefined ? 'kind is required (backup or restore)' : `kind: must be one of backup, restore (got ${show(kind)})`;
    return { ok: false, issues: [issue(['kind'], message)] };
  }
  const r = zodIssues(schema, data);
  if ('value' in r) return { ok: true, recipe: r.value };
  const issues = r.issues.map((i) => issue([...i.path], i.message, i.atKey));
  return { ok: false, issues: issues.sort((a, b) => a.line - b.line) };
}

/** Every problem of a recipe, in file order; empty when it is valid (for --dry-run and tests). */
export function recipeIssues(text: string): RecipeIssue[] {
  const r = validateRecipe(text);
  return r.ok ? [] : r.issues;
}

/** The problems as one line: the first, and how many more. */
export function issuesMessage(name: string, issues: readonly RecipeIssue[]): string {
  const first = issues[0];
  if (!first) return `recipe ${name} is valid`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `recipe ${name}: line ${first.line}: ${first.message}${more}`;
}

/** The recipe in `text`; InputError naming `name` (a file name, for messages) and the line. */
export function parseRecipe(text: string, name: string): Recipe {
  const r = validateRecipe(text);
  if (!r.ok) throw new InputError(issuesMessage(name, r.issues));
  return r.recipe;
}

export async function loadRecipe(path: string): Promise<Recipe> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`recipe ${path} does not exist`, { cause: err });
    throw new InputError(`reading recipe ${path} failed: ${describeCause(err)}`, { cause: err });
  }
  return parseRecipe(text, path);
}
