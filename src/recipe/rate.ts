/**
 * Rates like "200MiB/s": a number, a byte unit and "/s". Decimal units are powers of 1000,
 * binary ones (KiB, MiB, GiB) powers of 1024, so "100MB/s" means what a network admin means.
 */
import { InputError } from '../errors.js';

/** The syntax of a rate; also the JSON Schema pattern of `bandwidth`. */
export const RATE_PATTERN = '^(\\d+(?:\\.\\d+)?) ?(B|kB|KB|KiB|MB|MiB|GB|GiB)/s$';
const RATE = new RegExp(RATE_PATTERN);

const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  kB: 1000, KB: 1000, KiB: 1024,
  MB: 1000 ** 2, MiB: 1024 ** 2,
  GB: 1000 ** 3, GiB: 1024 ** 3,
};

/** Bytes per second of a rate, or undefined when `text` is not one (or is zero). */
export function tryParseRate(text: string): number | undefined {
  const m = RATE.exec(text);
  if (!m) return undefined;
  // Whole bytes: a limiter has no use for fractions, and a rate that rounds to 0 is no rate.
  const bytes = Math.round(Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0));
  return bytes > 0 ? bytes : undefined;
}

/** Bytes per second of a rate like "200MiB/s"; InputError when `text` is not one. */
export function parseRate(text: string): number {
  const n = tryParseRate(text);
  if (n === undefined) throw new InputError(rateProblem(text));
  return n;
}

/** Why `text` is not a rate, for messages. */
export function rateProblem(text: string): string {
  return RATE.test(text) ? `${JSON.stringify(text)} must be at least 1B/s` : `${JSON.stringify(text)} is not a rate like 200MiB/s`;
}
