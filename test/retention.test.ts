import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RetentionPolicy, applyRetention, isoWeek } from '../src/repository/retention.js';
import { checkPolicy } from '../src/repository/prune.js';

/** Generations at the given UTC times, numbered in time order. */
function gens(...times: string[]) {
  return times.map((t, i) => ({ generation: i + 1, time: new Date(t) }));
}

// Two backups a day (02:00 and 14:00) from 2026-01-01 to 2026-03-31.
const twiceDaily = (() => {
  const out: string[] = [];
  for (let d = Date.UTC(2026, 0, 1); d <= Date.UTC(2026, 2, 31); d += 86_400_000) {
    out.push(new Date(d + 2 * 3600_000).toISOString(), new Date(d + 14 * 3600_000).toISOString());
  }
  return gens(...out);
})();
const numberAt = (iso: string) => twiceDaily.find((g) => g.time.toISOString() === iso)!.generation;

describe('retention', () => {
  const table: { name: string; generations: ReturnType<typeof gens>; policy: RetentionPolicy; keep: number[] }[] = [
    { name: 'keep-last keeps the n newest', generations: gens('2026-01-01T00:00Z', '2026-01-02T00:00Z', '2026-01-03T00:00Z'), policy: { last: 2 }, keep: [3, 2] },
    { name: 'keep-last larger than the count keeps all', generations: gens('2026-01-01T00:00Z', '2026-01-02T00:00Z'), policy: { last: 5 }, keep: [2, 1] },
    { name: 'no generations: nothing to keep', generations: [], policy: { last: 3, daily: 3 }, keep: [] },
    {
      name: 'keep-daily keeps the newest of each day, for the n newest days that have one',
      generations: gens('2026-01-01T02:00Z', '2026-01-01T14:00Z', '2026-01-02T02:00Z', '2026-01-04T02:00Z', '2026-01-04T14:00Z'),
      policy: { last: 1, daily: 3 }, keep: [5, 3, 2],
    },
    {
      name: 'keep-weekly uses ISO weeks (Monday start): 2026-01-04 is a Sunday, 2026-01-05 a Monday',
      generations: gens('2026-01-03T10:00Z', '2026-01-04T10:00Z', '2026-01-05T10:00Z', '2026-01-06T10:00Z'),
      policy: { last: 1, weekly: 2 }, keep: [4, 2],
    },
    {
      name: 'keep-monthly keeps the newest of each of the n newest months',
      generations: gens('2025-11-30T10:00Z', '2025-12-01T10:00Z', '2025-12-31T23:00Z', '2026-01-15T10:00Z'),
      policy: { last: 1, monthly: 2 }, keep: [4, 3],
    },
    {
      name: 'rules combine: a generation kept by any rule is kept, once',
      generations: twiceDaily,
      policy: { last: 3, daily: 7, weekly: 4, monthly: 3 },
      keep: [
        // last 3, and daily 7 (the 14:00 of Mar 25–31), overlapping on Mar 31 14:00
        numberAt('2026-03-31T14:00:00.000Z'), numberAt('2026-03-31T02:00:00.000Z'), numberAt('2026-03-30T14:00:00.000Z'),
        numberAt('2026-03-29T14:00:00.000Z'), numberAt('2026-03-28T14:00:00.000Z'), numberAt('2026-03-27T14:00:00.000Z'),
        numberAt('2026-03-26T14:00:00.000Z'), numberAt('2026-03-25T14:00:00.000Z'),
        // weekly 4: newest of ISO weeks 14 (Mar 30–31), 13, 12, 11 → Sundays Mar 29, 22, 15
        numberAt('2026-03-22T14:00:00.000Z'), numberAt('2026-03-15T14:00:00.000Z'),
        // monthly 3: Mar 31, Feb 28, Jan 31
        numberAt('2026-02-28T14:00:00.000Z'), numberAt('2026-01-31T14:00:00.000Z'),
      ],
    },
  ];

  for (const t of table) {
    it(t.name, () => {
      const d = applyRetention(t.generations, t.policy, 'utc');
      assert.deepEqual(d.keep.map((k) => k.generation), t.keep);
      const all = t.generations.map((g) => g.generation);
      assert.deepEqual([...d.keep.map((k) => k.generation), ...d.remove].sort((a, b) => a - b), all, 'every generation is either kept or removed');
      assert.equal(new Set(d.keep.map((k) => k.generation)).size, d.keep.length, 'kept once');
    });
  }

  it('records why each generation is kept', () => {
    const d = applyRetention(gens('2026-01-01T02:00Z', '2026-01-02T02:00Z'), { last: 1, daily: 2 }, 'utc');
    assert.deepEqual(d.keep, [{ generation: 2, reasons: ['last', 'daily'] }, { generation: 1, reasons: ['daily'] }]);
    assert.deepEqual(d.remove, []);
  });

  it('ISO weeks at year boundaries', () => {
    assert.equal(isoWeek(new Date('2026-01-01T12:00Z'), 'utc'), '2026-W01'); // Thursday
    assert.equal(isoWeek(new Date('2027-01-01T12:00Z'), 'utc'), '2026-W53'); // Friday, belongs to 2026's last week
    assert.equal(isoWeek(new Date('2024-12-30T12:00Z'), 'utc'), '2025-W01'); // Monday of 2025's week 1
  });

  it('policies that would remove everything are refused', () => {
    assert.throws(() => checkPolicy({ last: 0, daily: 3 }), /keep-last/);
    assert.throws(() => checkPolicy({ daily: 3 }), /keep-last/);
    assert.throws(() => checkPolicy({ last: 1.5 }), /whole number/);
    checkPolicy({ last: 1 });
  });
});
