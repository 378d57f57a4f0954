/**
 * Zod issues as messages for people editing a YAML file: the field's path, what it must
 * be, and what it was ("must be one of auto, full, diff, incr (got "fast")"); an unknown
 * key is one issue per key with the nearest known key as a suggestion.
 */
import { z } from 'zod';

/** One problem in a recipe; `message` is complete without the line ("policy.mode: must be …"). */
export interface RecipeIssue {
  readonly path: string;
  readonly line: number;
  readonly message: string;
}

/** A problem found by zod, before its line is known. */
export interface PathIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** The issue is about the key at `path` itself (its line is the key's), not its value. */
  readonly atKey?: boolean;
}

/** "policy.retention.keepLast", "targets.vms[2]", 'targets.excludeDisks["db.01"]'. */
export function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(String(seg))) out += out === '' ? String(seg) : `.${String(seg)}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** A value as a message shows it after "got". */
export function show(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string', number: 'a number', int: 'a whole number', boolean: 'true or false',
  array: 'a list', object: 'a mapping', record: 'a mapping', literal: 'a constant',
};

function sizeWord(origin: string, n: number | bigint): string {
  if (origin === 'string') return `${n} character${n === 1 ? '' : 's'}`;
  if (origin === 'array' || origin === 'set') return `${n} entr${n === 1 ? 'y' : 'ies'}`;
  return String(n);
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The known key nearest to `key`, when near enough to be a likely misspelling. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; d: number } | undefined;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0.5 : distance(key, k);
    if (!best || d < best.d) best = { key: k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? best.key : undefined;
}

/**
 * Validates `data` and returns its problems, or the parsed value. Messages for zod's own
 * issues come from here (a parse-time error map); messages the schemas set win over it.
 */
export function zodIssues<S extends z.ZodType>(schema: S, data: unknown): { value: z.output<S> } | { issues: PathIssue[] } {
  // The keys an object knows, by the unknown keys it was given: inside a union the path
  // the error map sees is relative to the union's option, not the recipe's.
  const knownKeys = new Map<string, string[]>();
  const errorMap = (iss: z.core.$ZodRawIssue): string | undefined => {
    const got = `(got ${show(iss.input)})`;
    switch (iss.code) {
      case 'invalid_type': return iss.input === undefined ? 'is required' : `must be ${EXPECTED[iss.expected] ?? iss.expected} ${got}`;
      case 'invalid_value':
        return iss.values.length === 1 ? `must be ${show(iss.values[0])} ${got}` : `must be one of ${iss.values.map(String).join(', ')} ${got}`;
      case 'too_small':
        if (iss.origin !== 'number' && iss.minimum === 1) return 'must not be empty';
        return `must be ${iss.inclusive ? 'at least' : 'more than'} ${sizeWord(iss.origin, iss.minimum)} ${got}`;
      case 'too_big': return `must be ${iss.inclusive ? 'at most' : 'less than'} ${sizeWord(iss.origin, iss.maximum)} ${got}`;
      case 'unrecognized_keys':
        if (iss.inst instanceof z.ZodObject) knownKeys.set(iss.keys.join('\0'), Object.keys(iss.inst.shape));
        return 'unknown keys';
      case 'invalid_union': return `is not valid here ${got}`;
      case 'invalid_key': return 'has an invalid key';
      default: return undefined;
    }
  };
  const r = schema.safeParse(data, { error: errorMap, reportInput: true });
  if (r.success) return { value: r.data };

  const issues: PathIssue[] = [];
  for (const iss of r.error.issues) {
    const where = pathText(iss.path);
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) {
        const hint = suggestKey(key, knownKeys.get(iss.keys.join('\0')) ?? []);
        const message = `unknown key ${JSON.stringify(key)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}`;
        issues.push({ path: [...iss.path, key], message: where ? `${where}: ${message}` : message, atKey: true });
      }
    } else if ((iss.code === 'invalid_type' || iss.code === 'invalid_union') && iss.input === undefined) {
      issues.push({ path: iss.path, message: `${where || 'the recipe'} is required` });
    } else {
      issues.push({ path: iss.path, message: where ? `${where}: ${iss.message}` : iss.message });
    }
  }
  return { issues };
}
