/** GET /api/v1/openapi.json: public, it describes the API and holds no data. */
import type { ServerApp, ServerContext } from '../context.js';
import { openApiDocument } from '../openapi.js';

export function register(app: ServerApp, _ctx: ServerContext): void {
  app.get('/api/v1/openapi.json', (c) => c.json(openApiDocument()));
}
