/**
 * The repository password on the command line: --repo-password-file, else
 * VMBKP_REPO_PASSWORD_FILE, else VMBKP_REPO_PASSWORD_COMMAND, else a prompt on the terminal
 * (not echoed; asked twice for a new password). Without a terminal nothing is asked.
 */
import { type RepositoryPasswordSource, environmentPasswordSource, readRepositoryPassword } from '../app/repository-password.js';
import { InputError, UsageError } from '../errors.js';
import { kdfForMemory, type KdfParams } from '../repository/keys.js';

export interface RepoPasswordOptions {
  repoPasswordFile?: string;
}

function canPrompt(): boolean {
  return !!process.stdin.isTTY && !!process.stderr.isTTY && !process.env['CI'];
}

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
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UsageError('interrupted at the password prompt'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch >= ' ') line += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

function source(opts: RepoPasswordOptions): RepositoryPasswordSource | undefined {
  if (opts.repoPasswordFile) return { kind: 'file', file: opts.repoPasswordFile, what: '--repo-password-file' };
  return environmentPasswordSource();
}

/** How to get the password of an existing repository; asked for only if it is encrypted. */
export function existingPassword(opts: RepoPasswordOptions): (() => Promise<string>) | undefined {
  const s = source(opts);
  if (s) return () => readRepositoryPassword(s);
  if (canPrompt()) return () => promptHidden('password of the repository: ');
  return undefined;
}

/**
 * The password for a new key (init, key add, key passwd): from the same sources, or asked
 * twice on the terminal. `flagHelp` names the ways to give it, for the error without one.
 */
export async function newPassword(opts: RepoPasswordOptions, what: string, flagHelp: string): Promise<string> {
  const s = source(opts);
  if (s) return readRepositoryPassword(s);
  if (!canPrompt()) throw new UsageError(`${what} needs a password: ${flagHelp}`);
  const first = await promptHidden(`new password (${what}): `);
  if (first === '') throw new InputError('the password is empty');
  const again = await promptHidden('the same password again: ');
  if (again !== first) throw new InputError('the two passwords differ; nothing was changed');
  return first;
}

/** --kdf-memory, else VMBKP_KDF_MEMORY, else the default: scrypt's memory per password guess. */
export function kdfParams(kdfMemory: string | undefined): KdfParams | undefined {
  const v = kdfMemory ?? process.env['VMBKP_KDF_MEMORY'];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--kdf-memory needs a whole number of MiB, got ${JSON.stringify(v)}`);
  return kdfForMemory(Number(v));
}
