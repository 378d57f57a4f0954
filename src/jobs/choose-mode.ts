/**
 * Which mode a disk is backed up in. Explicit modes are honoured or refused with the
 * reason; auto takes the best one available: incr, else diff, else full.
 */
import { InputError } from '../errors.js';
import type { BackupMode, RequestedMode } from '../repository/generation.js';

export interface ModeInputs {
  readonly requested: RequestedMode;
  /** The disk exists in the previous generation with the same size and chunk size. */
  readonly previousUsable: boolean;
  /** Why the previous generation cannot be used, when it cannot. */
  readonly previousWhy?: string;
  /** Changed extents are known (given, or reported by the source). */
  readonly changesKnown: boolean;
  readonly changesWhy?: string;
  /**
   * Explicit diff and incr fall back (with a note) instead of failing: VM backups must
   * never fail because CBT was reset or a disk was resized.
   */
  readonly lenient?: boolean;
}

export interface ModeChoice {
  readonly mode: BackupMode;
  /** Set when auto fell back: why the better mode was not possible. */
  readonly note?: string;
}

export function chooseMode(what: string, m: ModeInputs): ModeChoice {
  const prevWhy = m.previousWhy ?? 'no previous generation';
  const chWhy = m.changesWhy ?? 'no changed extents';
  switch (m.requested) {
    case 'full':
      return { mode: 'full' };
    case 'diff':
      if (!m.previousUsable && m.lenient) return { mode: 'full', note: `diff not possible: ${prevWhy}` };
      if (!m.previousUsable) throw new InputError(`${what}: diff is not possible (${prevWhy}); use --mode full or auto`);
      return { mode: 'diff' };
    case 'incr':
      if (m.lenient && !(m.changesKnown && m.previousUsable)) return chooseMode(what, { ...m, requested: 'auto' });
      if (!m.changesKnown) throw new InputError(`${what}: incr needs the changed extents since the previous generation (${chWhy}); pass --changed DISK=EXTENTS.json or use --mode diff or auto`);
      if (!m.previousUsable) throw new InputError(`${what}: incr is not possible (${prevWhy}); use --mode full or auto`);
      return { mode: 'incr' };
    case 'auto':
      if (m.previousUsable && m.changesKnown) return { mode: 'incr' };
      if (m.previousUsable) return { mode: 'diff', note: `incr not possible: ${chWhy}` };
      return { mode: 'full', note: `diff not possible: ${prevWhy}` };
  }
}
