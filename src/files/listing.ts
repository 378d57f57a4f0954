/**
 * Directory listings and stats through guestfish: names come NUL-separated through a host
 * file (ls0, find0), so that any byte but NUL and / survives; stats in batches.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Guestfish, quote, quoteList } from './guestfish.js';
import { type GuestStat, parseStats } from './stat.js';

export interface GuestEntry extends GuestStat {
  readonly name: string;
  readonly target?: string;
}

const BATCH = 200;

/** Runs `request` with a private host file as its last argument; returns the file's NUL-separated names. */
async function namesVia(fish: Guestfish, request: (hostFile: string) => string, what: string, guestPath: string): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'vmbkp-files-'));
  try {
    const file = path.join(dir, 'names');
    await fish.callOn(request(file), guestPath, what);
    const text = await fs.readFile(file, 'utf8');
    return text.split('\0').filter((n) => n !== '');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export async function lstat(fish: Guestfish, p: string, what: string): Promise<GuestStat> {
  const s = parseStats(await fish.callOn(`lstatns ${quote(p)}`, p, what))[0];
  if (!s) throw new Error(`guestfish printed no stat for ${p}`);
  return s;
}

export async function readlink(fish: Guestfish, p: string, what: string): Promise<string> {
  return (await fish.callOn(`readlink ${quote(p)}`, p, what)).replace(/\n$/, '');
}

/** Stats (and link targets) of the names in directory `dir`. */
export async function statNames(fish: Guestfish, dir: string, names: readonly string[], what: string): Promise<GuestEntry[]> {
  const out: GuestEntry[] = [];
  for (let i = 0; i < names.length; i += BATCH) {
    const batch = names.slice(i, i + BATCH);
    const list = quoteList(batch);
    const stats = list !== undefined ? parseStats(await fish.callOn(`lstatnslist ${quote(dir)} ${list}`, dir, what)) : undefined;
    for (let k = 0; k < batch.length; k++) {
      const name = batch[k]!;
      const full = path.posix.join(dir, name);
      const s = stats?.[k] ?? await lstat(fish, full, what);
      out.push(s.type === 'symlink' ? { ...s, name, target: await readlink(fish, full, what) } : { ...s, name });
    }
  }
  return out;
}

/** The entries of a directory, sorted by name. */
export async function listDirectory(fish: Guestfish, dir: string, what: string): Promise<GuestEntry[]> {
  const names = await namesVia(fish, (f) => `ls0 ${quote(dir)} ${quote(f)}`, what, dir);
  names.sort();
  return statNames(fish, dir, names, what);
}

/** Every path under `dir` (relative to it), unsorted. */
export async function findUnder(fish: Guestfish, dir: string, what: string): Promise<string[]> {
  return namesVia(fish, (f) => `find0 ${quote(dir)} ${quote(f)}`, what, dir);
}
