/**
 * What every route module gets: the config, the database, the repositories the API shows,
 * the job runner, the scheduler and the logger. Routes export `register(app, ctx)`.
 */
import type { Hono } from 'hono';
import type { ServerConfig } from './config.js';
import type { Db } from './db.js';
import type { JobRunner } from './jobs.js';
import type { RepositoryRegistry } from './repositories.js';
import type { Scheduler } from './scheduler.js';
import type { Role } from './roles.js';

/** Who made a request, and how: a session cookie (then CSRF applies) or an API token. */
export interface Principal {
  readonly user: string;
  readonly role: Role;
  readonly via: 'session' | 'token';
  /** The session's CSRF token (via session only). */
  readonly csrfToken?: string;
  /** sha256 of the session id, so logout can delete it. */
  readonly sessionHash?: string;
}

export type ServerEnv = { Variables: { principal: Principal; auditSummary: string } };
export type ServerApp = Hono<ServerEnv>;

/** The server's log: lines for the operator (the CLI prints them); never a secret in a field. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface ServerContext {
  readonly config: ServerConfig;
  /** The server config file, for messages. */
  readonly configFile: string;
  readonly db: Db;
  readonly repositories: RepositoryRegistry;
  readonly jobs: JobRunner;
  readonly scheduler: Scheduler;
  readonly log: Logger;
}
