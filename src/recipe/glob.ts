/**
 * Shell-style globs on VM names: `*` any characters, `?` one, `[abc]` `[a-z]` one of a
 * set, `[!abc]` one not in it. Everything else, regex metacharacters included, is literal,
 * and the whole name must match.
 */
import { InputError } from '../errors.js';

/** True when `pattern` has glob characters (so matching nothing is not an error). */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

const escape = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2); // a "]" right after "[" (or "[!") is a member
      const negated = pattern[i + 1] === '!' || pattern[i + 1] === '^';
      const end = negated ? pattern.indexOf(']', i + 3) : close;
      if (end < 0) { out += escape(c); continue; } // no closing "]": a literal "["
      const body = pattern.slice(i + (negated ? 2 : 1), end);
      // Keep "a-z" ranges; escape the rest so "[.]" or "[\]" mean themselves.
      const set = body.replace(/[\\^\]]/g, '\\$&').replace(/[[]/g, '\\[');
      out += `[${negated ? '^' : ''}${set}]`;
      i = end;
    } else out += escape(c);
  }
  try {
    return new RegExp(`^${out}$`, 's');
  } catch {
    // Only a set can be malformed here: a range backwards, like [z-a].
    throw new InputError(`${JSON.stringify(pattern)} is not a valid glob: a range in [...] runs backwards`);
  }
}
