/**
 * Generation selectors, as the user types them after --generation: a number, `latest`,
 * `latest~N` (N before the newest), a date or date-time (the newest generation started at
 * or before it; local time unless a zone is given),
 * or a prefix of the generation's id (4 or more hex digits). A date or date-time means its
 * last moment: 2026-11-20 is the end of that day, 2026-11-20T14:00 is 14:00:59.999. Parsing is separate from
 * choosing, so both are tested without a repository.
 */
import { InputError, NotFoundError } from '../errors.js';

export type GenerationSelector =
  | { readonly kind: 'number'; readonly generation: number }
  | { readonly kind: 'latest'; readonly back: number }
  | { readonly kind: 'time'; readonly at: Date; readonly endOfDay: boolean }
  | { readonly kind: 'id'; readonly prefix: string };

/** What choosing needs to know of each generation of a set (from its manifest). */
export interface GenerationCandidate {
  readonly generation: number;
  readonly id: string;
  /** ISO 8601, UTC: when the backup started (the point in time the generation holds). */
  readonly started: string;
}

const NUMBER = /^[1-9]\d{0,8}$/;
const LATEST = /^latest(?:~(\d{1,9}))?$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?(Z|[+-]\d{2}:\d{2})?$/i;
const ID_PREFIX = /^[0-9a-f][0-9a-f-]*$/i;
const MIN_ID_HEX = 4;

const FORMS = 'give a number, latest, latest~N, a date or date-time (2026-11-20, 2026-11-20T14:00, optionally with Z or +01:00) or 4 or more hex digits of a generation id';

export function parseGenerationSelector(text: string): GenerationSelector {
  const invalid = (why = FORMS) => new InputError(`generation ${JSON.stringify(text)} is invalid: ${why}`);
  if (NUMBER.test(text)) return { kind: 'number', generation: Number(text) };
  const latest = LATEST.exec(text);
  if (latest) return { kind: 'latest', back: latest[1] === undefined ? 0 : Number(latest[1]) };
  const dt = DATE_TIME.exec(text);
  if (dt) return { kind: 'time', at: parseInstant(dt, invalid), endOfDay: dt[4] === undefined };
  if (ID_PREFIX.test(text) && text.replace(/-/g, '').length >= MIN_ID_HEX) return { kind: 'id', prefix: text.toLowerCase() };
  throw invalid();
}

/** Whether `text` is a selector parseGenerationSelector accepts (for schemas). */
export function isGenerationSelector(text: string): boolean {
  try {
    parseGenerationSelector(text);
    return true;
  } catch {
    return false;
  }
}

/** The instant a date or date-time names: the end of the day for a bare date. */
function parseInstant(m: RegExpExecArray, invalid: (why?: string) => Error): Date {
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const bare = m[4] === undefined;
  // The last moment of what was written: a generation that started within that day, minute or second is "at or before" it.
  const [h, mi, s, ms] = bare ? [23, 59, 59, 999] : [Number(m[4]), Number(m[5]), m[6] === undefined ? 59 : Number(m[6]), 999];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) throw invalid('no such date or time');
  // Day-of-month past the month's end rolls over in Date: check it against a UTC date of the same fields.
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) throw invalid('no such date');
  const zone = m[7];
  if (zone === undefined) return new Date(y, mo - 1, d, h, mi, s, ms);
  const offsetMin = zone.toUpperCase() === 'Z' ? 0
    : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  if (Math.abs(offsetMin) > 14 * 60) throw invalid('no such time zone offset');
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms) - offsetMin * 60_000);
}

/** How candidates are named in errors: "2 (3f2a91c0, 2026-11-20T14:00:05Z)". */
export function describeCandidate(c: GenerationCandidate): string {
  return `${c.generation} (${c.id.slice(0, 8)}, ${c.started.replace(/\.\d+Z$/, 'Z')})`;
}

/** Candidates for an error: all of them, or the first and last few of a long list. */
function listCandidates(cs: readonly GenerationCandidate[]): string {
  if (cs.length === 0) return 'none';
  const shown = cs.length <= 12 ? cs.map(describeCandidate)
    : [...cs.slice(0, 6).map(describeCandidate), `… ${cs.length - 12} more …`, ...cs.slice(-6).map(describeCandidate)];
  return shown.join(', ');
}

/**
 * The generation of `set` a selector picks among `candidates` (any order). A number is
 * not looked up here: the caller reads it directly (its "no generation N" stays the
 * repository's). Throws a one-line error listing the candidates when none or several fit.
 */
export function chooseGeneration(set: string, text: string, sel: GenerationSelector, candidates: readonly GenerationCandidate[]): GenerationCandidate {
  const all = [...candidates].sort((a, b) => a.generation - b.generation);
  const none = (what: string) => new NotFoundError(`set ${set} has no generation ${what} (its generations: ${listCandidates(all)})`);
  switch (sel.kind) {
    case 'number': {
      const c = all.find((x) => x.generation === sel.generation);
      if (!c) throw none(String(sel.generation));
      return c;
    }
    case 'latest': {
      const c = all[all.length - 1 - sel.back];
      if (!c) throw all.length === 0 ? new NotFoundError(`set ${set} has no generations`) : none(`${text}: it has ${all.length}`);
      return c;
    }
    case 'time': {
      // The newest that started at or before the instant; by start time, not by number (a copied generation keeps its time).
      const at = sel.at.getTime();
      const fit = all.filter((x) => Date.parse(x.started) <= at).sort((a, b) => Date.parse(a.started) - Date.parse(b.started) || a.generation - b.generation);
      const c = fit[fit.length - 1];
      if (!c) throw none(`started at or before ${text}${sel.endOfDay ? ' (the end of that day)' : ''}, ${sel.at.toISOString().replace(/\.\d+Z$/, 'Z')}`);
      return c;
    }
    case 'id': {
      const fit = all.filter((x) => x.id.toLowerCase().startsWith(sel.prefix));
      if (fit.length === 1) return fit[0]!;
      if (fit.length === 0) throw none(`whose id starts with ${sel.prefix}`);
      throw new InputError(`generation ${JSON.stringify(text)} of set ${set} is ambiguous: ${fit.length} ids start with it: ${listCandidates(fit)}; give more of the id`);
    }
  }
}
