/**
 * The server's state: one SQLite database (better-sqlite3, WAL) in stateDir. Job history,
 * each job's VMs and log, users, sessions, API tokens, the audit log and repository size
 * samples. Migrations are numbered and run in order at open (PRAGMA user_version); a
 * database from a newer server is refused rather than written in a shape it cannot read.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { IoError, UnsupportedFormatError, describeCause } from '../errors.js';

export type Db = Database.Database;

const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger TEXT NOT NULL,            -- schedule | api | missed
    user TEXT,
    status TEXT NOT NULL,             -- queued | running | succeeded | partial | failed | cancelled | interrupted | missed
    schedule TEXT,                    -- the schedule's name, for missed-run detection
    repository TEXT,                  -- the repository's name in the server config, else its location
    scheduled_for TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    duration_ms INTEGER,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    bytes_stored INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    params TEXT NOT NULL DEFAULT '{}', -- JSON, never a secret
    result TEXT,                      -- JSON report of the work, when it has one
    warnings TEXT NOT NULL DEFAULT '[]'
  );
  CREATE INDEX jobs_status ON jobs(status);
  CREATE INDEX jobs_schedule ON jobs(schedule, scheduled_for);
  CREATE TABLE job_vms (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    vm TEXT NOT NULL,
    set_name TEXT NOT NULL,
    repository TEXT,
    status TEXT NOT NULL,             -- succeeded | failed
    error_code TEXT,
    error_message TEXT,
    generation INTEGER,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    bytes_stored INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    finished_at TEXT NOT NULL,
    warnings TEXT NOT NULL DEFAULT '[]'
  );
  CREATE INDEX job_vms_job ON job_vms(job_id);
  CREATE INDEX job_vms_set ON job_vms(repository, set_name);
  CREATE TABLE job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    time TEXT NOT NULL,
    level TEXT NOT NULL,              -- info | warning | error
    message TEXT NOT NULL
  );
  CREATE INDEX job_events_job ON job_events(job_id, id);
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,               -- viewer | operator | admin
    password_hash TEXT NOT NULL,      -- scrypt$N$r$p$salt$hash
    created_at TEXT NOT NULL
  );
  CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,         -- sha256 of the cookie's value
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
  );
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,  -- sha256 of the token
    created_at TEXT NOT NULL,
    last_used_at TEXT
  );
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    user TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    summary TEXT NOT NULL
  );
  CREATE TABLE repo_usage (
    repository TEXT NOT NULL,
    time TEXT NOT NULL,
    stored_bytes INTEGER NOT NULL,    -- every object's size, as status reports it
    logical_bytes INTEGER,
    dedup_ratio REAL
  );
  CREATE INDEX repo_usage_repo ON repo_usage(repository, time);
  CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    since TEXT NOT NULL,              -- when this server first kept this schedule (as it is now)
    last_due TEXT                     -- the last time it came due (run, or recorded as missed)
  );
  `,
  // 2: the mode each VM's generation was made in (full, incr, diff; "full+incr" when its disks differ), for the overview.
  `ALTER TABLE job_vms ADD COLUMN mode TEXT;`,
];

export function openDb(stateDir: string): Db {
  const file = path.join(stateDir, 'vmbkp.db');
  let db: Db;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    db = new Database(file);
  } catch (err) {
    throw new IoError(`opening the server database ${file} failed: ${describeCause(err)}`, { cause: err });
  }
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  // Another process (a `vmbkp server user add` beside the running server) may hold the write lock briefly.
  db.pragma('busy_timeout = 5000');
  migrate(db, file);
  return db;
}

function migrate(db: Db, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    db.close();
    throw new UnsupportedFormatError(`the server database ${file} is of version ${version}, newer than this vmbkp knows (${MIGRATIONS.length}): run a newer vmbkp`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export const now = (): string => new Date().toISOString();
