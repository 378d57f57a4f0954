/**
 * Errors of the API as JSON: `{ error: { code, message } }`. VmbkpErrors keep their stable
 * code (the CLI's); the status follows from it. Errors of HTTP itself (401, 403 and csrf)
 * are HttpErrors.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type ErrorCode, VmbkpError, describeCause } from '../errors.js';

export class HttpError extends Error {
  constructor(readonly status: ContentfulStatusCode, readonly code: string, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

const STATUS: Partial<Record<ErrorCode, ContentfulStatusCode>> = {
  USAGE: 400, INPUT_INVALID: 400, NOT_FOUND: 404, REPO_NOT_FOUND: 404, ALREADY_EXISTS: 409, REPO_LOCKED: 409,
  REPO_UNSUPPORTED: 422, REPO_DAMAGED: 500, REPO_PASSWORD: 500, AUTH: 502, IO: 500, PARTIAL: 500, HOOK_FAILED: 500, INTERNAL: 500,
};

export function errorResponse(err: unknown): { status: ContentfulStatusCode; body: { error: { code: string; message: string } } } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  if (err instanceof VmbkpError) return { status: STATUS[err.code] ?? 500, body: { error: { code: err.code, message: err.message.split('\n')[0]! } } };
  return { status: 500, body: { error: { code: 'INTERNAL', message: describeCause(err).split('\n')[0]! } } };
}

export const unauthenticated = (): HttpError => new HttpError(401, 'unauthenticated', 'log in (POST /api/v1/session) or give an API token (Authorization: Bearer TOKEN)');
export const forbidden = (what: string): HttpError => new HttpError(403, 'forbidden', what);
export const badRequest = (message: string): HttpError => new HttpError(400, 'USAGE', message);
export const notFound = (message: string): HttpError => new HttpError(404, 'NOT_FOUND', message);
