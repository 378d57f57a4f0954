/**
 * Passwords a recipe or the command line points at: the first line of a file, or an
 * environment variable. Recipes never hold a password itself, and messages name where it
 * should be, never what it is. The vCenter's and the repository's passwords are read here
 * alike.
 */
import { readFile } from 'node:fs/promises';
import { InputError, describeCause } from '../errors.js';
import type { Connection } from './schema.js';

/** The first line of `text`: a trailing newline is not part of a password. */
export function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? '';
}

/** The first line of `file`; `label` names the file in messages ("password file F"). */
export async function readPasswordFile(file: string, label: string): Promise<string> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`reading ${label} failed: ${describeCause(err)}`, { cause: err });
  }
  const password = firstLine(content);
  if (password === '') throw new InputError(`${label} is empty`);
  return password;
}

/** The value of `variable`; `label` says whose password it is, for messages. */
export function readPasswordEnv(variable: string, label: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const password = env[variable];
  if (password === undefined || password === '') {
    throw new InputError(`environment variable ${variable} (${label}) is ${password === undefined ? 'not set' : 'empty'}`);
  }
  return password;
}

export async function resolvePassword(
  connection: Pick<Connection, 'passwordFile' | 'passwordEnv'>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<string> {
  if (connection.passwordFile !== undefined) return readPasswordFile(connection.passwordFile, `password file ${connection.passwordFile}`);
  if (connection.passwordEnv !== undefined) return readPasswordEnv(connection.passwordEnv, 'the vCenter password', env);
  throw new InputError('the recipe names no password: give connection.passwordFile or connection.passwordEnv');
}
