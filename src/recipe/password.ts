/**
 * The vCenter password a recipe points at. Recipes never hold the password itself, and
 * messages name where it should be, never what it is.
 */
import { readFile } from 'node:fs/promises';
import { InputError, describeCause } from '../errors.js';
import type { Connection } from './schema.js';

export async function resolvePassword(
  connection: Pick<Connection, 'passwordFile' | 'passwordEnv'>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<string> {
  if (connection.passwordFile !== undefined) {
    const file = connection.passwordFile;
    let content: string;
    try {
      content = await readFile(file, 'utf8');
    } catch (err) {
      throw new InputError(`reading password file ${file} failed: ${describeCause(err)}`, { cause: err });
    }
    // The first line, as with --password-file: a trailing newline is not part of the password.
    const password = content.split(/\r?\n/)[0] ?? '';
    if (password === '') throw new InputError(`password file ${file} is empty`);
    return password;
  }
  if (connection.passwordEnv !== undefined) {
    const password = env[connection.passwordEnv];
    if (password === undefined) throw new InputError(`environment variable ${connection.passwordEnv} (the vCenter password) is not set`);
    if (password === '') throw new InputError(`environment variable ${connection.passwordEnv} (the vCenter password) is empty`);
    return password;
  }
  throw new InputError('the recipe names no password: give connection.passwordFile or connection.passwordEnv');
}
