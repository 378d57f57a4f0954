/**
 * The server's scheduler and config without a server: cron in a time zone, due times
 * missed while down counted from the last recorded one (one 'missed' job, not run late),
 * a schedule new to the database counting from now, and config errors with their line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServerConfig } from '../src/server/config.js';
import { openDb } from '../src/server/db.js';
import { JobRunner } from '../src/server/jobs.js';
import { Scheduler } from '../src/server/scheduler.js';
import { tempDir } from './helpers.js';

describe('server scheduler', () => {
  it('reports the due times passed while down as one missed job, in the schedule\'s time zone', async () => {
    const { dir, cleanup } = await tempDir('vmbkp-schedule-');
    const db = openDb(dir);
    try {
      const jobs = new JobRunner(db);
      let runs = 0;
      jobs.register({ kind: 'recipe', parse: (b) => b, describe: (p) => ({ name: String(p['schedule']), schedule: String(p['schedule']) }), run: async () => { runs++; return {}; } });
      const schedules = [{ name: 'nightly', recipe: '/r.yaml', cron: '30 2 * * *', timezone: 'Europe/Berlin' }];
      // First start: the schedule is new, nothing before now counts.
      const s1 = new Scheduler(db, jobs, schedules);
      assert.deepEqual(s1.detectMissed(new Date('2026-11-30T12:00:00Z')), []);
      // Next start three days later: 02:30 Berlin (01:30 UTC in winter) passed three times.
      const s2 = new Scheduler(db, jobs, schedules);
      const missed = s2.detectMissed(new Date('2026-12-03T12:00:00Z'));
      assert.equal(missed.length, 1);
      assert.equal(missed[0]!.status, 'missed');
      assert.equal(missed[0]!.trigger, 'missed');
      assert.equal(missed[0]!.scheduledFor, '2026-12-03T01:30:00.000Z');
      assert.match(missed[0]!.error!.message, /3 runs of schedule nightly were missed while the server was down \(due from 2026-12-01T01:30:00.000Z to 2026-12-03T01:30:00.000Z\)/);
      assert.equal(runs, 0, 'not run late');
      // Counted once: a start right after finds nothing new.
      assert.deepEqual(new Scheduler(db, jobs, schedules).detectMissed(new Date('2026-12-03T12:00:01Z')), []);
      // A changed cron starts counting afresh.
      assert.deepEqual(new Scheduler(db, jobs, [{ ...schedules[0]!, cron: '0 3 * * *' }]).detectMissed(new Date('2026-12-09T12:00:00Z')), []);
      assert.equal(new Scheduler(db, jobs, schedules).list()[0]!.name, 'nightly');
    } finally {
      db.close();
      await cleanup();
    }
  });

  it('refuses a bad cron, time zone or unknown key with its line', () => {
    const base = 'stateDir: /var/lib/vmbkp\nschedules:\n';
    assert.throws(() => parseServerConfig(`${base}  - { name: a, recipe: r.yaml, cron: "61 * * * *" }\n`, 's.yaml'), /s\.yaml: line 3: schedules\[0\]\.cron: "61 \* \* \* \*" is not a cron expression/);
    assert.throws(() => parseServerConfig(`${base}  - { name: a, recipe: r.yaml, cron: "* * * * *", timezone: Mars/Base }\n`, 's.yaml'), /line 3: schedules\[0\]\.timezone: "Mars\/Base" is not a time zone/);
    assert.throws(() => parseServerConfig('stateDir: /x\nlisten: 8443\n', 's.yaml'), /line 2: listen: must be/);
    assert.throws(() => parseServerConfig('stateDir: /x\nlistn: a:1\n', 's.yaml'), /line 2: unknown key "listn" \(did you mean "listen"\?\)/);
    const c = parseServerConfig(`${base}  - { name: a, recipe: r.yaml, cron: "*/5 * * * * *" }\n`, '/etc/vmbkp/s.yaml');
    assert.equal(c.schedules[0]!.recipe, '/etc/vmbkp/r.yaml');
    assert.equal(c.schedules[0]!.timezone, 'UTC');
  });
});
