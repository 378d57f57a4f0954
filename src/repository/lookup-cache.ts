/**
 * Where a repository's local index cache lives: VMBKP_CACHE_DIR, else $XDG_CACHE_HOME/vmbkp,
 * else ~/.cache/vmbkp; then index/<repository id>/lookup. It holds digests and pack
 * locations only (no key, no set name), and is derived: deleting it costs one rebuild.
 */
import { homedir } from 'node:os';
import path from 'node:path';

export function cacheBase(env: NodeJS.ProcessEnv = process.env): string {
  return env['VMBKP_CACHE_DIR'] || path.join(env['XDG_CACHE_HOME'] || path.join(homedir(), '.cache'), 'vmbkp');
}

export function lookupPath(repositoryId: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheBase(env), 'index', repositoryId, 'lookup');
}

/**
 * Blobs of index files not merged into the lookup file that are held in memory instead
 * (~150 bytes each). Past this, opening merges them into the lookup file; a repository
 * smaller than this never writes a cache. VMBKP_INDEX_MEMORY_ENTRIES overrides it (tests).
 */
export function memoryEntries(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env['VMBKP_INDEX_MEMORY_ENTRIES']);
  return Number.isInteger(v) && v >= 0 ? v : 200_000;
}
