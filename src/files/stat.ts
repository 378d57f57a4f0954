/** What guestfish prints for stat structures (`lstatns`, `lstatnslist`), as entries. */

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface GuestStat {
  readonly type: EntryType;
  /** Permission bits (with setuid/setgid/sticky), as chmod takes them. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly atimeMs: number;
}

function typeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000: return 'file';
    case 0o040000: return 'directory';
    case 0o120000: return 'symlink';
    default: return 'other';
  }
}

/** The structures in guestfish's output, in order (one for lstatns, `[i] = {…}` for the lists). */
export function parseStats(text: string): GuestStat[] {
  const out: GuestStat[] = [];
  let fields = new Map<string, number>();
  const flush = () => {
    if (!fields.has('st_mode')) return;
    const f = (k: string) => fields.get(k) ?? 0;
    const mode = f('st_mode');
    out.push({
      type: typeOf(mode), mode: mode & 0o7777, uid: f('st_uid'), gid: f('st_gid'), size: f('st_size'),
      mtimeMs: f('st_mtime_sec') * 1000 + Math.floor(f('st_mtime_nsec') / 1e6),
      atimeMs: f('st_atime_sec') * 1000 + Math.floor(f('st_atime_nsec') / 1e6),
    });
    fields = new Map();
  };
  for (const line of text.split('\n')) {
    const m = /^\s*(st_\w+): (-?\d+)$/.exec(line);
    if (m) {
      if (m[1] === 'st_dev' && fields.has('st_mode')) flush();
      fields.set(m[1]!, Number(m[2]));
    } else if (/^\s*}\s*$/.test(line)) {
      flush();
    }
  }
  flush();
  return out;
}
