/**
 * The job runner: every piece of long work the server does (a recipe run, a verify, a
 * prune, a restore) is a job with a row in `jobs`, per-VM results in `job_vms` and its log
 * in `job_events`. A job kind is registered with its work function; `start` records the
 * job, runs the work in the background and returns its id at once. Progress and log lines
 * go to SSE subscribers and (the log) into the database. `cancel` aborts the job's signal;
 * the work decides how to stop cleanly. A job found 'running' when the server starts was
 * cut off by the previous process's end: it becomes 'interrupted'.
 */
import { EventEmitter } from 'node:events';
import { errorRecord } from '../errors.js';
import type { Db } from './db.js';
import { now } from './db.js';
import { HttpError, badRequest, notFound } from './http-error.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled' | 'interrupted' | 'missed';
export type JobTrigger = 'schedule' | 'api' | 'missed';
export type LogLevel = 'info' | 'warning' | 'error';
export const FINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'partial', 'failed', 'cancelled', 'interrupted', 'missed'];

export interface JobError { readonly code: string; readonly message: string }

export interface JobVm {
  readonly name: string;
  readonly set: string;
  readonly status: 'succeeded' | 'failed';
  readonly error: JobError | null;
  readonly generation: number | null;
}

export interface JobSummary {
  readonly id: number;
  readonly kind: string;
  readonly name: string;
  readonly trigger: JobTrigger;
  readonly user: string | null;
  readonly status: JobStatus;
  readonly repository: string | null;
  readonly scheduledFor: string | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly durationMs: number | null;
  readonly bytesRead: number;
  readonly bytesStored: number;
  readonly error: JobError | null;
  readonly vms: readonly JobVm[];
}

export interface JobDetail extends JobSummary {
  readonly vms: readonly (JobVm & { bytesRead: number; bytesStored: number; durationMs: number | null; warnings: string[] })[];
  readonly warnings: readonly string[];
  readonly params: Record<string, unknown>;
  readonly result: unknown;
}

export interface LogEntry { readonly time: string; readonly level: LogLevel; readonly message: string }
export interface ProgressEvent { readonly done: number; readonly total: number; readonly vm?: string; readonly disk?: string }

export type JobEvent =
  | { type: 'progress'; data: ProgressEvent }
  | { type: 'log'; data: LogEntry }
  | { type: 'end'; data: JobSummary };

/** A VM's (or any item's) result, as the work reports it. */
export interface VmOutcome {
  readonly name: string;
  readonly set: string;
  readonly ok: boolean;
  readonly error?: JobError | undefined;
  readonly generation?: number | undefined;
  /** How the generation was made: its disks' modes, "+"-joined when they differ. */
  readonly mode?: string | undefined;
  readonly bytesRead?: number;
  readonly bytesStored?: number;
  readonly durationMs?: number;
  readonly warnings?: readonly string[];
}

/** What the work function gets. */
export interface JobHandle {
  readonly id: number;
  readonly params: Record<string, unknown>;
  readonly user: string | null;
  /** Aborted by POST /jobs/{id}/cancel (or the server stopping). */
  readonly signal: AbortSignal;
  log(level: LogLevel, message: string): void;
  progress(p: ProgressEvent): void;
  /** A per-VM result: into job_vms, and its bytes into the job's totals. */
  vm(outcome: VmOutcome): void;
  /** The repository worked on (its name in the server config, else its location), once known. */
  setRepository(repository: string): void;
}

/** What the work ends with. Without `status`: succeeded, or failed when it threw. */
export interface JobOutcome {
  readonly status?: 'succeeded' | 'partial' | 'failed' | 'cancelled';
  readonly error?: JobError;
  readonly result?: unknown;
  /** Totals when the work reports them itself rather than per VM. */
  readonly bytesRead?: number;
  readonly bytesStored?: number;
}

/** A kind of job: how its params are checked, what it is called in lists, and its work. */
export interface JobKind {
  readonly kind: string;
  /** Checks the request body (400 with a message otherwise); the result is stored as the job's params (no secrets). */
  parse(params: Record<string, unknown>): Record<string, unknown>;
  /** The job's name in lists, and the repository it works on (its name in the server config), if known. */
  describe(params: Record<string, unknown>): { name: string; repository?: string | undefined; schedule?: string | undefined };
  /** Operator unless said otherwise. */
  readonly role?: 'operator' | 'admin';
  run(job: JobHandle): Promise<JobOutcome>;
}

export interface StartOptions {
  readonly user: string | null;
  readonly trigger: JobTrigger;
  readonly scheduledFor?: Date | undefined;
}

interface JobRow {
  id: number; kind: string; name: string; trigger: JobTrigger; user: string | null; status: JobStatus; schedule: string | null;
  repository: string | null; scheduled_for: string | null; started_at: string | null; finished_at: string | null; duration_ms: number | null;
  bytes_read: number; bytes_stored: number; error_code: string | null; error_message: string | null; params: string; result: string | null; warnings: string;
}

interface VmRow {
  job_id: number; vm: string; set_name: string; status: 'succeeded' | 'failed'; error_code: string | null; error_message: string | null;
  generation: number | null; bytes_read: number; bytes_stored: number; duration_ms: number | null; warnings: string;
}

const vmOf = (v: VmRow): JobVm => ({
  name: v.vm, set: v.set_name, status: v.status, generation: v.generation,
  error: v.error_code !== null ? { code: v.error_code, message: v.error_message ?? '' } : null,
});

function summaryOf(r: JobRow, vms: readonly VmRow[]): JobSummary {
  return {
    id: r.id, kind: r.kind, name: r.name, trigger: r.trigger, user: r.user, status: r.status, repository: r.repository,
    scheduledFor: r.scheduled_for, startedAt: r.started_at, finishedAt: r.finished_at, durationMs: r.duration_ms,
    bytesRead: r.bytes_read, bytesStored: r.bytes_stored,
    error: r.error_code !== null ? { code: r.error_code, message: r.error_message ?? '' } : null,
    vms: vms.map(vmOf),
  };
}

interface Running {
  readonly controller: AbortController;
  readonly done: Promise<void>;
  readonly warnings: string[];
  lastProgress?: ProgressEvent;
}

/** Called after every job ends (alerts, repository size samples, metrics). */
export type JobEndListener = (summary: JobSummary) => void | Promise<void>;

export class JobRunner {
  private readonly kinds = new Map<string, JobKind>();
  private readonly running = new Map<number, Running>();
  private readonly events = new EventEmitter();
  private readonly endListeners: JobEndListener[] = [];

  constructor(private readonly db: Db, private readonly onError: (message: string) => void = () => {}) {
    this.events.setMaxListeners(0);
  }

  register(kind: JobKind): void {
    if (this.kinds.has(kind.kind)) throw new Error(`job kind ${kind.kind} is registered twice`);
    this.kinds.set(kind.kind, kind);
  }

  kind(name: string): JobKind | undefined {
    return this.kinds.get(name);
  }

  onEnd(listener: JobEndListener): void {
    this.endListeners.push(listener);
  }

  /** Jobs the previous process left running were cut off: interrupted. Returns how many. */
  markInterrupted(): number {
    const t = now();
    const r = this.db.prepare(`UPDATE jobs SET status = 'interrupted', finished_at = ?,
      error_code = 'INTERRUPTED', error_message = 'the server stopped while this job ran' WHERE status IN ('running', 'queued')`).run(t);
    return r.changes;
  }

  /** Checks the request against its kind (400 when it is wrong): the params as stored. */
  parse(kindName: string, body: Record<string, unknown>): { kind: JobKind; params: Record<string, unknown> } {
    const kind = this.kinds.get(kindName);
    if (!kind) throw badRequest(`job kind ${JSON.stringify(kindName)} is not one of ${[...this.kinds.keys()].join(', ')}`);
    return { kind, params: kind.parse(body) };
  }

  /** Records the job and starts its work; returns its id at once. */
  start(kindName: string, body: Record<string, unknown>, opts: StartOptions): number {
    const { kind, params } = this.parse(kindName, body);
    const d = kind.describe(params);
    const t = now();
    const id = Number(this.db.prepare(`INSERT INTO jobs (kind, name, trigger, user, status, schedule, repository, scheduled_for, created_at, started_at, params)
      VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)`).run(kind.kind, d.name, opts.trigger, opts.user, d.schedule ?? null, d.repository ?? null,
      opts.scheduledFor?.toISOString() ?? null, t, t, JSON.stringify(params)).lastInsertRowid);
    const controller = new AbortController();
    const state: Running = { controller, warnings: [], done: Promise.resolve() };
    const handle = this.handle(id, params, opts.user, controller.signal, state);
    const t0 = performance.now();
    (state as { done: Promise<void> }).done = (async () => {
      let outcome: JobOutcome;
      try {
        outcome = await kind.run(handle);
      } catch (err) {
        outcome = { status: controller.signal.aborted ? 'cancelled' : 'failed', error: errorRecord(err) };
      }
      this.finish(id, outcome, Math.round(performance.now() - t0), state);
    })();
    this.running.set(id, state);
    return id;
  }

  /** A scheduled run that did not happen (the previous one still ran, or the server was down). */
  recordMissed(kindName: string, params: Record<string, unknown>, scheduledFor: Date, reason: string): JobSummary {
    const kind = this.kinds.get(kindName);
    const d = kind?.describe(params) ?? { name: kindName };
    const t = now();
    const id = Number(this.db.prepare(`INSERT INTO jobs (kind, name, trigger, user, status, schedule, repository, scheduled_for, created_at, finished_at,
      error_code, error_message, params) VALUES (?, ?, 'missed', NULL, 'missed', ?, ?, ?, ?, ?, 'MISSED', ?, ?)`)
      .run(kindName, d.name, d.schedule ?? null, d.repository ?? null, scheduledFor.toISOString(), t, t, reason, JSON.stringify(params)).lastInsertRowid);
    const summary = this.summary(id)!;
    this.emitEnd(summary);
    return summary;
  }

  private handle(id: number, params: Record<string, unknown>, user: string | null, signal: AbortSignal, state: Running): JobHandle {
    const insertLog = this.db.prepare('INSERT INTO job_events (job_id, time, level, message) VALUES (?, ?, ?, ?)');
    const insertVm = this.db.prepare(`INSERT INTO job_vms (job_id, vm, set_name, repository, status, error_code, error_message, generation,
      bytes_read, bytes_stored, duration_ms, finished_at, warnings, mode) VALUES (?, ?, ?, (SELECT repository FROM jobs WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const addBytes = this.db.prepare('UPDATE jobs SET bytes_read = bytes_read + ?, bytes_stored = bytes_stored + ? WHERE id = ?');
    return {
      id, params, user, signal,
      log: (level, message) => {
        const entry: LogEntry = { time: now(), level, message };
        insertLog.run(id, entry.time, level, message);
        if (level === 'warning') state.warnings.push(message);
        this.events.emit(String(id), { type: 'log', data: entry } satisfies JobEvent);
      },
      progress: (p) => {
        state.lastProgress = p;
        this.events.emit(String(id), { type: 'progress', data: p } satisfies JobEvent);
      },
      setRepository: (repository) => {
        this.db.prepare('UPDATE jobs SET repository = ? WHERE id = ?').run(repository, id);
      },
      vm: (o) => {
        this.db.transaction(() => {
          insertVm.run(id, o.name, o.set, id, o.ok ? 'succeeded' : 'failed', o.error?.code ?? null, o.error?.message ?? null, o.generation ?? null,
            o.bytesRead ?? 0, o.bytesStored ?? 0, o.durationMs ?? null, now(), JSON.stringify(o.warnings ?? []), o.mode ?? null);
          addBytes.run(o.bytesRead ?? 0, o.bytesStored ?? 0, id);
        })();
      },
    };
  }

  private finish(id: number, outcome: JobOutcome, durationMs: number, state: Running): void {
    const status = outcome.status ?? (outcome.error ? 'failed' : 'succeeded');
    try {
      this.db.prepare(`UPDATE jobs SET status = ?, finished_at = ?, duration_ms = ?, error_code = ?, error_message = ?, result = ?, warnings = ?,
        bytes_read = bytes_read + ?, bytes_stored = bytes_stored + ? WHERE id = ?`)
        .run(status, now(), durationMs, outcome.error?.code ?? null, outcome.error?.message ?? null,
          outcome.result === undefined ? null : JSON.stringify(outcome.result), JSON.stringify(state.warnings),
          outcome.bytesRead ?? 0, outcome.bytesStored ?? 0, id);
    } catch (err) {
      this.onError(`recording the end of job ${id} failed: ${errorRecord(err).message}`);
    }
    this.running.delete(id);
    const summary = this.summary(id);
    if (summary) this.emitEnd(summary);
  }

  private emitEnd(summary: JobSummary): void {
    this.events.emit(String(summary.id), { type: 'end', data: summary } satisfies JobEvent);
    for (const l of this.endListeners) {
      Promise.resolve().then(() => l(summary)).catch((err: unknown) => this.onError(`after job ${summary.id}: ${errorRecord(err).message}`));
    }
  }

  cancel(id: number): void {
    const r = this.running.get(id);
    if (!r) {
      if (!this.summary(id)) throw notFound(`job ${id} does not exist`);
      throw new HttpError(409, 'NOT_RUNNING', `job ${id} is not running`);
    }
    r.controller.abort(new Error(`job ${id} was cancelled`));
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  runningIds(): number[] {
    return [...this.running.keys()];
  }

  lastProgress(id: number): ProgressEvent | undefined {
    return this.running.get(id)?.lastProgress;
  }

  /** Listens to a job's events; returns the function that stops listening. */
  subscribe(id: number, listener: (e: JobEvent) => void): () => void {
    this.events.on(String(id), listener);
    return () => this.events.off(String(id), listener);
  }

  summary(id: number): JobSummary | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    if (!row) return undefined;
    return summaryOf(row, this.db.prepare('SELECT * FROM job_vms WHERE job_id = ? ORDER BY rowid').all(id) as VmRow[]);
  }

  detail(id: number): JobDetail | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    if (!row) return undefined;
    const vms = this.db.prepare('SELECT * FROM job_vms WHERE job_id = ? ORDER BY rowid').all(id) as VmRow[];
    const running = this.running.get(id);
    return {
      ...summaryOf(row, vms),
      vms: vms.map((v) => ({ ...vmOf(v), bytesRead: v.bytes_read, bytesStored: v.bytes_stored, durationMs: v.duration_ms, warnings: JSON.parse(v.warnings) as string[] })),
      warnings: running ? [...running.warnings] : JSON.parse(row.warnings) as string[],
      params: JSON.parse(row.params) as Record<string, unknown>,
      result: row.result === null ? null : JSON.parse(row.result) as unknown,
    };
  }

  list(opts: { limit?: number; status?: string; kind?: string; schedule?: string } = {}): JobSummary[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (opts.status) { where.push('status = ?'); args.push(opts.status); }
    if (opts.kind) { where.push('kind = ?'); args.push(opts.kind); }
    if (opts.schedule) { where.push('schedule = ?'); args.push(opts.schedule); }
    const rows = this.db.prepare(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`)
      .all(...args, Math.min(Math.max(opts.limit ?? 50, 1), 1000)) as JobRow[];
    if (rows.length === 0) return [];
    const vms = this.db.prepare(`SELECT * FROM job_vms WHERE job_id IN (${rows.map(() => '?').join(',')}) ORDER BY rowid`).all(...rows.map((r) => r.id)) as VmRow[];
    return rows.map((r) => summaryOf(r, vms.filter((v) => v.job_id === r.id)));
  }

  log(id: number): LogEntry[] {
    return this.db.prepare('SELECT time, level, message FROM job_events WHERE job_id = ? ORDER BY id').all(id) as LogEntry[];
  }

  /** Aborts every running job and waits for them to end (a clean stop). */
  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    for (const r of all) r.controller.abort(new Error('the server is stopping'));
    await Promise.allSettled(all.map((r) => r.done));
  }
}
