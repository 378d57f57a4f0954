/**
 * Users, sessions, API tokens and the auth middleware.
 *
 * - Passwords: scrypt (memory-hard; N=2^15, r=8, p=1: 32 MiB per hash) with a per-user
 *   random salt, compared in constant time. The parameters are stored with the hash so
 *   they can be raised later.
 * - Sessions: a random 32-byte id in the cookie, only its sha256 in the database; they
 *   expire. Each has a CSRF token that cookie-authenticated mutating requests must echo in
 *   X-CSRF-Token (a cookie is sent by the browser on its own; the header is not).
 * - API tokens: random, shown once, only their sha256 stored; `Authorization: Bearer`.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { AlreadyExistsError, InputError, NotFoundError } from '../errors.js';
import type { Db } from './db.js';
import { now } from './db.js';
import type { Principal, ServerEnv } from './context.js';
import { HttpError, forbidden, unauthenticated } from './http-error.js';
import { type Role, isRole, roleAtLeast } from './roles.js';

export const SESSION_COOKIE = 'vmbkp_session';
export const SESSION_TTL_MS = 12 * 3600_000;

const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keyLength: 32 } as const;

function scrypt(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const maxmem = (N: number, r: number) => 256 * N * r;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: maxmem(SCRYPT.N, SCRYPT.r) });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const got = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: maxmem(Number(n), Number(r)) });
  return timingSafeEqual(got, expected);
}

/** Hashed for an unknown user too, so the time of a failed login does not tell whether the user exists. */
let dummyHash: Promise<string> | undefined;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

// ---- users

export interface UserRecord { readonly name: string; readonly role: Role; readonly createdAt: string }

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function checkUserName(name: string): void {
  if (!USER_NAME.test(name)) throw new InputError(`user name ${JSON.stringify(name)} is not valid: 1-64 letters, digits, ".", "_", "@", "-", starting with a letter or digit`);
}

export function checkPassword(password: string): void {
  if (password.length < 8) throw new InputError('the password is too short: give at least 8 characters');
}

export function listUsers(db: Db): UserRecord[] {
  return (db.prepare('SELECT name, role, created_at AS createdAt FROM users ORDER BY name').all() as UserRecord[]);
}

export async function addUser(db: Db, name: string, role: string, password: string): Promise<void> {
  checkUserName(name);
  if (!isRole(role)) throw new InputError(`role ${JSON.stringify(role)} is not one of viewer, operator, admin`);
  checkPassword(password);
  const hash = await hashPassword(password);
  const r = db.prepare('INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING').run(name, role, hash, now());
  if (r.changes === 0) throw new AlreadyExistsError(`user ${name} already exists`);
}

export async function setPassword(db: Db, name: string, password: string): Promise<void> {
  checkPassword(password);
  const hash = await hashPassword(password);
  const r = db.prepare('UPDATE users SET password_hash = ? WHERE name = ?').run(hash, name);
  if (r.changes === 0) throw new NotFoundError(`user ${name} does not exist`);
  // A new password ends the sessions opened with the old one.
  db.prepare('DELETE FROM sessions WHERE user = ?').run(name);
}

export function removeUser(db: Db, name: string): void {
  const r = db.prepare('DELETE FROM users WHERE name = ?').run(name);
  if (r.changes === 0) throw new NotFoundError(`user ${name} does not exist`);
}

/** The user when the password is theirs; undefined otherwise (the same time either way). */
export async function checkLogin(db: Db, name: string, password: string): Promise<UserRecord | undefined> {
  const row = db.prepare('SELECT name, role, password_hash AS hash, created_at AS createdAt FROM users WHERE name = ?').get(name) as (UserRecord & { hash: string }) | undefined;
  if (!row) {
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await verifyPassword(password, await dummyHash);
    return undefined;
  }
  return (await verifyPassword(password, row.hash)) ? { name: row.name, role: row.role, createdAt: row.createdAt } : undefined;
}

// ---- sessions

export interface NewSession { readonly id: string; readonly csrfToken: string; readonly expiresAt: Date }

export function createSession(db: Db, user: string, ttlMs = SESSION_TTL_MS): NewSession {
  const id = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + ttlMs);
  db.prepare('DELETE FROM sessions WHERE expires_at < ?').run(now());
  db.prepare('INSERT INTO sessions (id_hash, user, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(sha256(id), user, csrfToken, now(), expiresAt.toISOString());
  return { id, csrfToken, expiresAt };
}

export function deleteSession(db: Db, idHash: string): void {
  db.prepare('DELETE FROM sessions WHERE id_hash = ?').run(idHash);
}

function sessionPrincipal(db: Db, id: string): Principal | undefined {
  const idHash = sha256(id);
  const row = db.prepare(`SELECT s.user AS user, u.role AS role, s.csrf_token AS csrf, s.expires_at AS expires
    FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?`).get(idHash) as { user: string; role: Role; csrf: string; expires: string } | undefined;
  if (!row || Date.parse(row.expires) <= Date.now()) return undefined;
  return { user: row.user, role: row.role, via: 'session', csrfToken: row.csrf, sessionHash: idHash };
}

// ---- API tokens

export interface TokenRecord { readonly id: string; readonly name: string; readonly user: string; readonly createdAt: string; readonly lastUsedAt: string | null }

/** The token is `vmbkp_` and 32 random bytes: recognisable in a leak scan, shown once. */
export function createToken(db: Db, user: string, name: string): { id: string; token: string } {
  if (!name || name.length > 100) throw new InputError('a token needs a name of 1-100 characters');
  const exists = db.prepare('SELECT 1 FROM users WHERE name = ?').get(user);
  if (!exists) throw new NotFoundError(`user ${user} does not exist`);
  const id = randomBytes(8).toString('hex');
  const token = `vmbkp_${randomBytes(32).toString('base64url')}`;
  db.prepare('INSERT INTO api_tokens (id, name, user, token_hash, created_at) VALUES (?, ?, ?, ?, ?)').run(id, name, user, sha256(token), now());
  return { id, token };
}

export function listTokens(db: Db, user?: string): TokenRecord[] {
  const sql = 'SELECT id, name, user, created_at AS createdAt, last_used_at AS lastUsedAt FROM api_tokens';
  return (user === undefined ? db.prepare(`${sql} ORDER BY created_at`).all() : db.prepare(`${sql} WHERE user = ? ORDER BY created_at`).all(user)) as TokenRecord[];
}

export function tokenOwner(db: Db, id: string): string | undefined {
  return (db.prepare('SELECT user FROM api_tokens WHERE id = ?').get(id) as { user: string } | undefined)?.user;
}

export function revokeToken(db: Db, id: string): void {
  const r = db.prepare('DELETE FROM api_tokens WHERE id = ?').run(id);
  if (r.changes === 0) throw new NotFoundError(`API token ${id} does not exist`);
}

function tokenPrincipal(db: Db, token: string): Principal | undefined {
  const row = db.prepare('SELECT t.id AS id, t.user AS user, u.role AS role FROM api_tokens t JOIN users u ON u.name = t.user WHERE t.token_hash = ?')
    .get(sha256(token)) as { id: string; user: string; role: Role } | undefined;
  if (!row) return undefined;
  db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now(), row.id);
  return { user: row.user, role: row.role, via: 'token' };
}

// ---- middleware

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Requests that need no login: logging in, and the API's description. */
function isPublic(method: string, path: string): boolean {
  return (method === 'POST' && path === '/api/v1/session') || (method === 'GET' && path === '/api/v1/openapi.json');
}

/** Protected paths: the API and /metrics. The dashboard's static files are public (they hold no data). */
function isProtected(path: string): boolean {
  return path === '/metrics' || path.startsWith('/api/');
}

/**
 * Sets `principal` from the bearer token or the session cookie; 401 without either on a
 * protected path; 403 `csrf` for a cookie-authenticated mutating request without the
 * session's token in X-CSRF-Token.
 */
export function authMiddleware(db: Db): MiddlewareHandler<ServerEnv> {
  return async (c, next) => {
    const method = c.req.method;
    const path = c.req.path;
    if (!isProtected(path) || isPublic(method, path)) return next();
    const header = c.req.header('authorization');
    let principal: Principal | undefined;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      principal = m ? tokenPrincipal(db, m[1]!) : undefined;
      if (!principal) throw new HttpError(401, 'unauthenticated', 'the API token is not valid (revoked, or mistyped)');
    } else {
      const id = getCookie(c, SESSION_COOKIE);
      principal = id ? sessionPrincipal(db, id) : undefined;
      if (!principal) throw unauthenticated();
      // Set before the CSRF check, so the audit log names whose request was refused.
      c.set('principal', principal);
      if (MUTATING.has(method)) {
        const sent = c.req.header('x-csrf-token') ?? '';
        const expected = principal.csrfToken ?? '';
        const ok = sent.length === expected.length && expected.length > 0 && timingSafeEqual(Buffer.from(sent), Buffer.from(expected));
        if (!ok) throw new HttpError(403, 'csrf', 'this request needs the session\'s CSRF token in the X-CSRF-Token header');
      }
    }
    c.set('principal', principal);
    return next();
  };
}

/** Throws 403 unless the request's user has at least `role`. */
export function requireRole(principal: Principal, role: Role, what: string): void {
  if (!roleAtLeast(principal.role, role)) throw forbidden(`${what} needs the ${role} role; user ${principal.user} is a ${principal.role}`);
}

/** Viewers may only read: a mutating request by one is refused whatever its route. */
export function viewerReadOnly(): MiddlewareHandler<ServerEnv> {
  return async (c, next) => {
    const p = c.get('principal') as Principal | undefined;
    if (p && p.role === 'viewer' && MUTATING.has(c.req.method) && c.req.path !== '/api/v1/session') {
      throw forbidden(`${c.req.method} ${c.req.path} needs the operator role; user ${p.user} is a viewer`);
    }
    return next();
  };
}
