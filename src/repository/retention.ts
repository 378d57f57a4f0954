/**
 * Retention: which generations a policy keeps. A pure function of the generations'
 * times and the policy, so it is tested by tables.
 *
 * Generations are considered newest first. keep-last N keeps the N newest. keep-daily N
 * keeps the newest generation of each of the N most recent days that have one; weekly
 * (ISO weeks) and monthly likewise. A generation kept by any rule is kept.
 */

export interface RetentionPolicy {
  readonly last?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
}

export interface Dated {
  readonly generation: number;
  readonly time: Date;
}

export type Reason = 'last' | 'daily' | 'weekly' | 'monthly';

export interface RetentionDecision {
  /** Kept generations, newest first, with the rules that keep each. */
  readonly keep: { generation: number; reasons: Reason[] }[];
  /** Generations to remove, newest first. */
  readonly remove: number[];
}

/** 'local' buckets days in the machine's time zone (what an administrator means by "daily"); 'utc' for tests and servers in UTC. */
export type Calendar = 'local' | 'utc';

function parts(t: Date, cal: Calendar): { y: number; m: number; d: number; wd: number } {
  return cal === 'utc'
    ? { y: t.getUTCFullYear(), m: t.getUTCMonth(), d: t.getUTCDate(), wd: t.getUTCDay() }
    : { y: t.getFullYear(), m: t.getMonth(), d: t.getDate(), wd: t.getDay() };
}

/** ISO 8601 week: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(t: Date, cal: Calendar): string {
  const p = parts(t, cal);
  const day = Date.UTC(p.y, p.m, p.d);
  const thursday = new Date(day + (3 - ((p.wd + 6) % 7)) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return `${year}-W${String(week).padStart(2, '0')}`;
}

const buckets: Record<Exclude<Reason, 'last'>, (t: Date, cal: Calendar) => string> = {
  daily: (t, cal) => { const p = parts(t, cal); return `${p.y}-${p.m}-${p.d}`; },
  weekly: isoWeek,
  monthly: (t, cal) => { const p = parts(t, cal); return `${p.y}-${p.m}`; },
};

export function applyRetention(generations: readonly Dated[], policy: RetentionPolicy, cal: Calendar = 'local'): RetentionDecision {
  const sorted = [...generations].sort((a, b) => b.time.getTime() - a.time.getTime() || b.generation - a.generation);
  const reasons = new Map<number, Reason[]>();
  const mark = (g: number, r: Reason) => { const l = reasons.get(g) ?? []; l.push(r); reasons.set(g, l); };

  sorted.slice(0, Math.max(0, policy.last ?? 0)).forEach((g) => mark(g.generation, 'last'));
  for (const rule of ['daily', 'weekly', 'monthly'] as const) {
    const want = policy[rule] ?? 0;
    const seen = new Set<string>();
    for (const g of sorted) {
      if (seen.size >= want) break;
      const key = buckets[rule](g.time, cal);
      if (seen.has(key)) continue;
      seen.add(key);
      mark(g.generation, rule);
    }
  }
  return {
    keep: sorted.filter((g) => reasons.has(g.generation)).map((g) => ({ generation: g.generation, reasons: reasons.get(g.generation)! })),
    remove: sorted.filter((g) => !reasons.has(g.generation)).map((g) => g.generation),
  };
}
