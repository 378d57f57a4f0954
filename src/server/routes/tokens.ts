/** API tokens: one's own (operator and admin), others' (admin). The token is in the answer to POST only. */
import { createToken, listTokens, requireRole, revokeToken, tokenOwner } from '../auth.js';
import type { ServerApp, ServerContext } from '../context.js';
import { notFound } from '../http-error.js';
import { jsonBody, stringField } from './body.js';

export function register(app: ServerApp, ctx: ServerContext): void {
  app.get('/api/v1/tokens', (c) => {
    const p = c.get('principal');
    return c.json(listTokens(ctx.db, p.role === 'admin' ? undefined : p.user));
  });
  app.post('/api/v1/tokens', async (c) => {
    const p = c.get('principal');
    const body = await jsonBody(c);
    const name = stringField(body, 'name');
    const user = typeof body['user'] === 'string' ? body['user'] : p.user;
    if (user !== p.user) requireRole(p, 'admin', 'creating a token for another user');
    const t = createToken(ctx.db, user, name);
    c.set('auditSummary', `create API token ${t.id} (${name}) for ${user}`);
    return c.json(t, 201);
  });
  app.delete('/api/v1/tokens/:id', (c) => {
    const p = c.get('principal');
    const id = c.req.param('id');
    c.set('auditSummary', `revoke API token ${id}`);
    const owner = tokenOwner(ctx.db, id);
    if (owner === undefined) throw notFound(`API token ${id} does not exist`);
    if (owner !== p.user) requireRole(p, 'admin', 'revoking another user\'s token');
    revokeToken(ctx.db, id);
    return c.body(null, 204);
  });
}
