/** Reading request bodies and query values, with a 400 naming what is wrong. */
import type { Context } from 'hono';
import { badRequest } from '../http-error.js';

export async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw badRequest(`${c.req.method} ${c.req.path} needs a JSON object as its body`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`${c.req.method} ${c.req.path} needs a JSON object as its body`);
  return body as Record<string, unknown>;
}

export function stringField(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw badRequest(`"${key}" must be a non-empty string`);
  return v;
}

export function limitParam(c: Context, fallback = 50): number {
  const v = c.req.query('limit');
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw badRequest(`limit must be a whole number ≥ 1 (got ${JSON.stringify(v)})`);
  return Math.min(Number(v), 1000);
}
