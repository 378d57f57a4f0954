/**
 * The OpenAPI 3.1 document of /api/v1. Each resource group adds its paths here (one
 * object per group, merged below), so the document stays beside the routes it describes.
 */
type Json = Record<string, unknown>;

const error = { $ref: '#/components/schemas/Error' };
const json = (schema: Json) => ({ 'application/json': { schema } });
const ok = (description: string, schema: Json) => ({ description, content: json(schema) });
const errors = {
  400: { description: 'bad input', content: json(error) },
  401: { description: 'not logged in', content: json(error) },
  403: { description: 'forbidden (role), or csrf', content: json(error) },
};

const schemas: Json = {
  Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
  JobVm: {
    type: 'object', properties: {
      name: { type: 'string' }, set: { type: 'string' }, status: { enum: ['succeeded', 'failed'] },
      error: { oneOf: [{ type: 'null' }, { $ref: '#/components/schemas/ErrorBody' }] }, generation: { type: ['integer', 'null'] },
    },
  },
  ErrorBody: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
  JobSummary: {
    type: 'object',
    required: ['id', 'kind', 'name', 'trigger', 'user', 'status', 'scheduledFor', 'startedAt', 'finishedAt', 'durationMs', 'bytesRead', 'bytesStored', 'error', 'vms'],
    properties: {
      id: { type: 'integer' }, kind: { type: 'string' }, name: { type: 'string' }, trigger: { enum: ['schedule', 'api', 'missed'] },
      user: { type: ['string', 'null'] },
      status: { enum: ['queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled', 'interrupted', 'missed'] },
      repository: { type: ['string', 'null'] },
      scheduledFor: { type: ['string', 'null'], format: 'date-time' }, startedAt: { type: ['string', 'null'], format: 'date-time' },
      finishedAt: { type: ['string', 'null'], format: 'date-time' }, durationMs: { type: ['integer', 'null'] },
      bytesRead: { type: 'integer' }, bytesStored: { type: 'integer' },
      error: { oneOf: [{ type: 'null' }, { $ref: '#/components/schemas/ErrorBody' }] },
      vms: { type: 'array', items: { $ref: '#/components/schemas/JobVm' } },
    },
  },
  LogEntry: { type: 'object', properties: { time: { type: 'string', format: 'date-time' }, level: { enum: ['info', 'warning', 'error'] }, message: { type: 'string' } } },
  Session: { type: 'object', properties: { user: { type: 'string' }, role: { enum: ['viewer', 'operator', 'admin'] }, csrfToken: { type: 'string' } } },
};

/** The server's own groups: session, jobs, users, tokens, audit, overview, metrics. */
const serverPaths: Json = {
  '/session': {
    post: {
      summary: 'Log in', security: [],
      requestBody: { content: json({ type: 'object', required: ['user', 'password'], properties: { user: { type: 'string' }, password: { type: 'string' } } }) },
      responses: { 200: ok('logged in; sets the vmbkp_session cookie', { $ref: '#/components/schemas/Session' }), ...errors },
    },
    get: { summary: 'Who is logged in', responses: { 200: ok('the session', { $ref: '#/components/schemas/Session' }), ...errors } },
    delete: { summary: 'Log out', responses: { 204: { description: 'logged out' }, ...errors } },
  },
  '/overview': { get: { summary: 'Sets (failures first), repositories, schedules, running jobs', responses: { 200: ok('the overview', { type: 'object' }), ...errors } } },
  '/jobs': {
    get: {
      summary: 'Job history, newest first',
      parameters: [
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
        { name: 'status', in: 'query', schema: { type: 'string' } }, { name: 'kind', in: 'query', schema: { type: 'string' } },
        { name: 'schedule', in: 'query', schema: { type: 'string' } },
      ],
      responses: { 200: ok('jobs', { type: 'array', items: { $ref: '#/components/schemas/JobSummary' } }), ...errors },
    },
    post: {
      summary: 'Start a job (operator)',
      requestBody: { content: json({ type: 'object', required: ['kind'], properties: { kind: { type: 'string' }, schedule: { type: 'string' }, recipe: { type: 'string' } } }) },
      responses: { 202: ok('started', { type: 'object', properties: { id: { type: 'integer' } } }), 409: { description: 'already running', content: json(error) }, ...errors },
    },
  },
  '/jobs/{id}': { get: { summary: 'A job with its VMs, warnings and params', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: ok('the job', { $ref: '#/components/schemas/JobSummary' }), 404: { description: 'no such job', content: json(error) }, ...errors } } },
  '/jobs/{id}/log': { get: { summary: 'A job\'s log', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: ok('log lines', { type: 'array', items: { $ref: '#/components/schemas/LogEntry' } }), ...errors } } },
  '/jobs/{id}/events': { get: { summary: 'Server-Sent Events: log (the log so far first), progress {done,total,vm,disk}, end (JobSummary)', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors } } },
  '/jobs/{id}/cancel': { post: { summary: 'Cancel a running job (operator)', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 202: ok('cancelling', { type: 'object' }), 409: { description: 'not running', content: json(error) }, ...errors } } },
  '/users': {
    get: { summary: 'Users (admin)', responses: { 200: ok('users', { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, role: { type: 'string' }, createdAt: { type: 'string' } } } }), ...errors } },
    post: { summary: 'Add a user (admin)', requestBody: { content: json({ type: 'object', required: ['name', 'role', 'password'], properties: { name: { type: 'string' }, role: { enum: ['viewer', 'operator', 'admin'] }, password: { type: 'string', minLength: 8 } } }) }, responses: { 201: ok('added', { type: 'object' }), 409: { description: 'exists', content: json(error) }, ...errors } },
  },
  '/users/{name}': { delete: { summary: 'Remove a user (admin)', parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }], responses: { 204: { description: 'removed' }, ...errors } } },
  '/tokens': {
    get: { summary: 'API tokens (one\'s own; admin: all); never the token itself', responses: { 200: ok('tokens', { type: 'array', items: { type: 'object' } }), ...errors } },
    post: { summary: 'Create an API token: the token is in this answer only', requestBody: { content: json({ type: 'object', required: ['name'], properties: { name: { type: 'string' }, user: { type: 'string', description: 'admin only' } } }) }, responses: { 201: ok('created', { type: 'object', properties: { id: { type: 'string' }, token: { type: 'string' } } }), ...errors } },
  },
  '/tokens/{id}': { delete: { summary: 'Revoke an API token', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { 204: { description: 'revoked' }, ...errors } } },
  '/audit': { get: { summary: 'Audit log (admin), newest first', parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }], responses: { 200: ok('entries', { type: 'array', items: { type: 'object', properties: { time: { type: 'string' }, user: { type: ['string', 'null'] }, method: { type: 'string' }, path: { type: 'string' }, status: { type: 'integer' }, summary: { type: 'string' } } } }), ...errors } } },
  '/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: ok('OpenAPI 3.1', { type: 'object' }) } } },
};

/** Other groups (repositories, generations, exports, …) register their paths and schemas here. */
const extraPaths: Json[] = [];
const extraSchemas: Json[] = [];

export function addOpenApi(paths: Json, componentSchemas: Json = {}): void {
  extraPaths.push(paths);
  extraSchemas.push(componentSchemas);
}

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: { title: 'vmbkp server API', version: '1' },
    servers: [{ url: '/api/v1' }],
    security: [{ session: [] }, { token: [] }],
    components: {
      securitySchemes: {
        session: { type: 'apiKey', in: 'cookie', name: 'vmbkp_session', description: 'mutating requests also need X-CSRF-Token (from POST/GET /session)' },
        token: { type: 'http', scheme: 'bearer', description: 'an API token (POST /tokens, or vmbkp server token create)' },
      },
      schemas: Object.assign({}, schemas, ...extraSchemas) as Json,
    },
    paths: Object.assign({}, serverPaths, ...extraPaths) as Json,
  };
}
