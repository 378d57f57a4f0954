/** Logging in and out: POST/GET/DELETE /api/v1/session. The cookie is HttpOnly, Secure, SameSite=Strict. */
import { deleteCookie, setCookie } from 'hono/cookie';
import { SESSION_COOKIE, checkLogin, createSession, deleteSession } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { HttpError } from '../http-error.js';
import { jsonBody, stringField } from './body.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.post('/api/v1/session', async (c) => {
    const body = await jsonBody(c);
    const name = stringField(body, 'user');
    c.set('auditSummary', `log in as ${name}`);
    const password = stringField(body, 'password');
    const user = await checkLogin(ctx.db, name, password);
    if (!user) throw new HttpError(401, 'AUTH', 'the user name or password is wrong');
    const s = createSession(ctx.db, user.name);
    setCookie(c, SESSION_COOKIE, s.id, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/', expires: s.expiresAt });
    c.set('principal', { user: user.name, role: user.role, via: 'session', csrfToken: s.csrfToken });
    return c.json({ user: user.name, role: user.role, csrfToken: s.csrfToken });
  });
  app.get('/api/v1/session', (c) => {
    const p = c.get('principal');
    return c.json({ user: p.user, role: p.role, csrfToken: p.csrfToken ?? null });
  });
  app.delete('/api/v1/session', (c) => {
    const p = c.get('principal');
    c.set('auditSummary', `log out ${p.user}`);
    if (p.sessionHash) deleteSession(ctx.db, p.sessionHash);
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true });
    return c.body(null, 204);
  });
}
