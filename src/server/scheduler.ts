/**
 * Recipes on cron schedules, each in its time zone (croner; 5 fields, or 6 with seconds
 * first). A schedule whose previous run still goes when it comes due is not started twice:
 * that due time is recorded as a 'missed' job with the reason. At start, due times that
 * passed while the server was down (after the schedule's last due time as recorded, or
 * since the server first kept it) are recorded as one 'missed' job per schedule (which
 * alerts), never run late on their own.
 */
import { Cron } from 'croner';
import type { Schedule } from './config.js';
import type { Db } from './db.js';
import { now } from './db.js';
import type { JobRunner, JobSummary } from './jobs.js';

export interface ScheduleInfo {
  readonly name: string;
  readonly recipe: string;
  readonly cron: string;
  readonly timezone: string;
  readonly nextRunAt: string | null;
  readonly lastRunAt: string | null;
}

/** Counted up to this many, for the message: past it, "more than". */
const MISSED_COUNT_LIMIT = 1000;

export class Scheduler {
  private readonly crons = new Map<string, Cron>();
  /** The job each schedule is running, by schedule name. */
  private readonly current = new Map<string, number>();

  constructor(private readonly db: Db, private readonly jobs: JobRunner, private readonly schedules: readonly Schedule[],
    private readonly log: { info(m: string): void; warn(m: string): void } = { info: () => {}, warn: () => {} }) {}

  private cronOf(s: Schedule, paused: boolean, fn?: (self: Cron) => void): Cron {
    const opts = { timezone: s.timezone, paused, mode: '5-or-6-parts' as const };
    return fn ? new Cron(s.cron, opts, fn) : new Cron(s.cron, opts);
  }

  /**
   * Due times missed while the server was down, each schedule's as one 'missed' job.
   * A schedule new to this database (or whose cron or time zone changed) starts counting now.
   */
  detectMissed(at: Date = new Date()): JobSummary[] {
    const out: JobSummary[] = [];
    for (const s of this.schedules) {
      const row = this.db.prepare('SELECT cron, timezone, since, last_due FROM schedules WHERE name = ?').get(s.name) as
        { cron: string; timezone: string; since: string; last_due: string | null } | undefined;
      if (!row || row.cron !== s.cron || row.timezone !== s.timezone) {
        this.db.prepare(`INSERT INTO schedules (name, cron, timezone, since, last_due) VALUES (?, ?, ?, ?, NULL)
          ON CONFLICT(name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, since = excluded.since, last_due = NULL`)
          .run(s.name, s.cron, s.timezone, at.toISOString());
        continue;
      }
      const from = new Date(row.last_due ?? row.since);
      const cron = this.cronOf(s, true);
      const missed: Date[] = [];
      for (let t = cron.nextRun(from); t && t.getTime() < at.getTime() && missed.length <= MISSED_COUNT_LIMIT; t = cron.nextRun(t)) missed.push(t);
      cron.stop();
      if (missed.length === 0) continue;
      const first = missed[0]!;
      const last = missed.at(-1)!;
      const n = missed.length > MISSED_COUNT_LIMIT ? `more than ${MISSED_COUNT_LIMIT}` : String(missed.length);
      const when = missed.length === 1 ? `at ${first.toISOString()}` : `from ${first.toISOString()} to ${last.toISOString()}`;
      const reason = `${n} run${missed.length === 1 ? '' : 's'} of schedule ${s.name} ${missed.length === 1 ? 'was' : 'were'} missed while the server was down (due ${when}); not run late`;
      out.push(this.jobs.recordMissed('recipe', { schedule: s.name }, last, reason));
      this.setLastDue(s.name, last);
      this.log.warn(reason);
    }
    return out;
  }

  private setLastDue(name: string, t: Date): void {
    this.db.prepare('UPDATE schedules SET last_due = ? WHERE name = ?').run(t.toISOString(), name);
  }

  start(): void {
    for (const s of this.schedules) {
      this.crons.set(s.name, this.cronOf(s, false, (self) => this.due(s, self.currentRun() ?? new Date())));
    }
  }

  private due(s: Schedule, at: Date): void {
    // Recorded first: a crash from here on leaves this due time taken, not counted missed again.
    this.db.prepare('INSERT INTO schedules (name, cron, timezone, since, last_due) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET last_due = excluded.last_due')
      .run(s.name, s.cron, s.timezone, now(), at.toISOString());
    const running = this.current.get(s.name);
    if (running !== undefined && this.jobs.isRunning(running)) {
      const reason = `schedule ${s.name} came due at ${at.toISOString()} while its previous run (job ${running}) was still running; not started twice`;
      this.jobs.recordMissed('recipe', { schedule: s.name }, at, reason);
      this.log.warn(reason);
      return;
    }
    try {
      const id = this.jobs.start('recipe', { schedule: s.name }, { user: null, trigger: 'schedule', scheduledFor: at });
      this.current.set(s.name, id);
      this.log.info(`schedule ${s.name}: started job ${id}`);
    } catch (err) {
      this.log.warn(`schedule ${s.name}: starting its run failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A run started on demand for a schedule counts as its current run too (no second one beside it). */
  claim(schedule: string, jobId: number): void {
    this.current.set(schedule, jobId);
  }

  runningJob(schedule: string): number | undefined {
    const id = this.current.get(schedule);
    return id !== undefined && this.jobs.isRunning(id) ? id : undefined;
  }

  stop(): void {
    for (const c of this.crons.values()) c.stop();
    this.crons.clear();
  }

  list(): ScheduleInfo[] {
    return this.schedules.map((s) => {
      const last = this.db.prepare("SELECT MAX(COALESCE(started_at, scheduled_for)) AS t FROM jobs WHERE schedule = ? AND status != 'missed'").get(s.name) as { t: string | null };
      const cron = this.crons.get(s.name);
      const next = cron ? cron.nextRun() : this.cronOf(s, true).nextRun();
      return { name: s.name, recipe: s.recipe, cron: s.cron, timezone: s.timezone, nextRunAt: next?.toISOString() ?? null, lastRunAt: last.t };
    });
  }
}
