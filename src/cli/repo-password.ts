/**
 * The repository password on the command line: --repo-password-file, else
 * VMBKP_REPO_PASSWORD_FILE, else VMBKP_REPO_PASSWORD_COMMAND, else the repository profile's
 * passwordFile or passwordCommand (app/settings.ts decides), else a prompt on the terminal
 * (not echoed; asked twice for a new password). Without a terminal nothing is asked. The
 * password of a new key (key add, key passwd) has sources of its own: --new-password-file,
 * VMBKP_NEW_REPO_PASSWORD_FILE.
 */
import { type RepositoryPasswordSource, environmentPasswordSource, readRepositoryPassword } from '../app/repository-password.js';
import { InputError, UsageError } from '../errors.js';
import type { KdfParams } from '../repository/keys.js';

export interface RepoPasswordOptions {
  repoPasswordFile?: string;
}

function canPrompt(): boolean {
  return !!process.stdin.isTTY && !!process.stderr.isTTY && !process.env['CI'];
}

/** Typed ahead of a prompt (a pasted "pw⏎pw⏎" arrives in one read): kept for the next prompt. */
let typedAhead = '';

/** Reads one line from the terminal without echoing it. */
export function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let line = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err); else resolve(line);
    };
    /** True when the line is complete (or the prompt was interrupted); the rest stays typed ahead. */
    const take = (text: string): boolean => {
      const chars = [...text];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === '\r' || ch === '\n') {
          const rest = chars.slice(i + 1).join('');
          typedAhead = ch === '\r' && rest.startsWith('\n') ? rest.slice(1) : rest;
          done();
          return true;
        }
        if (ch === '\u0003') { typedAhead = ''; done(new UsageError('interrupted at the password prompt')); return true; }
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch >= ' ') line += ch;
      }
      return false;
    };
    const onData = (data: Buffer) => { take(data.toString('utf8')); };
    stdin.setRawMode(true);
    const ahead = typedAhead;
    typedAhead = '';
    if (take(ahead)) return;
    stdin.resume();
    stdin.on('data', onData);
  });
}

/** The password source of the flag and the environment alone (a recipe's repository, which names its own). */
export function commandLinePasswordSource(opts: RepoPasswordOptions): RepositoryPasswordSource | undefined {
  if (opts.repoPasswordFile) return { kind: 'file', file: opts.repoPasswordFile, what: '--repo-password-file' };
  return environmentPasswordSource();
}

/** How to get the password of an existing repository; asked for only if it is encrypted. */
export function existingPassword(s: RepositoryPasswordSource | undefined): (() => Promise<string>) | undefined {
  if (s) return () => readRepositoryPassword(s);
  if (canPrompt()) return () => promptHidden('password of the repository: ');
  return undefined;
}

export interface FromRepoPasswordOptions {
  fromRepoPasswordFile?: string;
}

/**
 * The password of the repository a copy reads (`--from-repo`): --from-repo-password-file,
 * else VMBKP_FROM_REPO_PASSWORD_FILE, else VMBKP_FROM_REPO_PASSWORD_COMMAND, else its
 * profile's (the source `s`, as app/settings.ts decides), else a prompt on the terminal. Never the destination's sources: two repositories, two passwords. Asked for
 * only if the source is encrypted; without any source and without a terminal, opening an
 * encrypted one fails naming these.
 */
export function fromRepoPassword(s: RepositoryPasswordSource | undefined, location: string): () => Promise<string> {
  if (s) return () => readRepositoryPassword(s);
  if (canPrompt()) return () => promptHidden(`password of the source repository ${location}: `);
  return () => Promise.reject(new UsageError(`source repository ${location} is encrypted: give its password with --from-repo-password-file FILE, `
    + 'VMBKP_FROM_REPO_PASSWORD_FILE or VMBKP_FROM_REPO_PASSWORD_COMMAND'));
}

/**
 * A new password, from `s` or asked twice on the terminal; checked before the repository is
 * opened, so a command that cannot get one fails first. `flagHelp` names the ways to give
 * it, for the error without one.
 */
function askNew(s: RepositoryPasswordSource | undefined, what: string, need: string, flagHelp: string): () => Promise<string> {
  if (s) return () => readRepositoryPassword(s);
  if (!canPrompt()) throw new UsageError(`${what} needs ${need}: ${flagHelp}`);
  return async () => {
    const first = await promptHidden(`new password (${what}): `);
    if (first === '') throw new InputError('the password is empty');
    const again = await promptHidden('the same password again: ');
    if (again !== first) throw new InputError('the two passwords differ; nothing was changed');
    return first;
  };
}

/** The password of a new repository (init): from the sources of any command's password, or asked twice. */
export function initPassword(s: RepositoryPasswordSource | undefined): () => Promise<string> {
  return askNew(s, 'init', 'a password', 'give --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND, or run it on a terminal; or choose --encryption none');
}

export interface NewPasswordOptions {
  newPasswordFile?: string;
}

/**
 * The password of a new key (key add, key passwd): --new-password-file, else
 * VMBKP_NEW_REPO_PASSWORD_FILE, else asked twice on the terminal. The repository's
 * present password comes from the usual sources, so the two never mix.
 */
export function newKeyPassword(opts: NewPasswordOptions, what: string): () => Promise<string> {
  const env = process.env['VMBKP_NEW_REPO_PASSWORD_FILE'];
  const s: RepositoryPasswordSource | undefined = opts.newPasswordFile ? { kind: 'file', file: opts.newPasswordFile, what: '--new-password-file' }
    : env ? { kind: 'file', file: env, what: 'VMBKP_NEW_REPO_PASSWORD_FILE' } : undefined;
  return askNew(s, what, 'the new key\'s password', 'give --new-password-file FILE or VMBKP_NEW_REPO_PASSWORD_FILE, or run it on a terminal');
}

/** --kdf-memory, else VMBKP_KDF_MEMORY, else the default: scrypt's memory per password guess. */
export async function kdfParams(kdfMemory: string | undefined): Promise<KdfParams | undefined> {
  const v = kdfMemory ?? process.env['VMBKP_KDF_MEMORY'];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--kdf-memory needs a whole number of MiB, got ${JSON.stringify(v)}`);
  const { kdfForMemory } = await import('../repository/keys.js');
  return kdfForMemory(Number(v));
}
