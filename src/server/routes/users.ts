/** Users (admin): list, add, remove. Never a password or its hash in an answer. */
import { addUser, listUsers, removeUser, requireRole } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { badRequest } from '../http-error.js';
import { jsonBody, stringField } from './body.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/users', (c) => {
    requireRole(c.get('principal'), 'admin', 'listing users');
    return c.json(listUsers(ctx.db));
  });
  app.post('/api/v1/users', async (c) => {
    requireRole(c.get('principal'), 'admin', 'adding a user');
    const body = await jsonBody(c);
    const name = stringField(body, 'name');
    const role = stringField(body, 'role');
    c.set('auditSummary', `add user ${name} (${role})`);
    await addUser(ctx.db, name, role, stringField(body, 'password'));
    return c.json({ name, role }, 201);
  });
  app.delete('/api/v1/users/:name', (c) => {
    const p = c.get('principal');
    requireRole(p, 'admin', 'removing a user');
    const name = c.req.param('name');
    c.set('auditSummary', `remove user ${name}`);
    if (name === p.user) throw badRequest('an admin cannot remove their own user (another admin can)');
    removeUser(ctx.db, name);
    return c.body(null, 204);
  });
}
