/**
 * Reaching a vCenter: the credentials and certificate trust of a connection (from flags
 * or a recipe alike), its session, and what a job on it opens first.
 */
import { readFile } from 'node:fs/promises';
import { InputError, describeCause } from '../errors.js';
import { resolvePassword } from '../recipe/password.js';
import type { TlsPolicy } from '../vsphere/tls.js';
import { type SecretCommand, runSecretCommand } from './secret-command.js';
import type { Repository } from '../repository/repository.js';
import { type VcenterConnection, connect, tlsPolicy } from '../providers/vsphere/connection.js';
import type { VsphereSession } from '../vsphere/session.js';
import { openRepository } from './repository.js';

export { type VcenterConnection, connect } from '../providers/vsphere/connection.js';
export { type Transport, type VddkSettings, isTransport } from '../providers/vsphere/transport.js';

/**
 * Where and as whom to log in, as the user gave it; the password is read from a file, a
 * variable or a command's output (`passwordFrom` says where the command was given, for messages).
 */
export interface VcenterLogin {
  readonly vcenter: string;
  readonly user: string;
  readonly passwordFile?: string | undefined;
  readonly passwordEnv?: string | undefined;
  readonly passwordCommand?: SecretCommand | undefined;
  readonly passwordFrom?: string | undefined;
  readonly thumbprint?: string | undefined;
  readonly caFile?: string | undefined;
  readonly insecure?: boolean | undefined;
}

/** The CA file's certificates: read before logging in, so a missing file fails first and names itself. */
async function trust(login: VcenterLogin): Promise<TlsPolicy> {
  if (login.caFile === undefined) return tlsPolicy(login.thumbprint, login.insecure);
  let ca: string;
  try {
    ca = await readFile(login.caFile, 'utf8');
  } catch (err) {
    throw new InputError(`reading the vCenter CA file ${login.caFile} failed: ${describeCause(err)}`, { cause: err });
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new InputError(`the vCenter CA file ${login.caFile} holds no PEM certificate`);
  return { kind: 'ca', ca, caFile: login.caFile };
}

/** Reads the password; a recipe's passwordFile, --password-file and a profile's are read alike. */
export async function vcenterConnection(login: VcenterLogin): Promise<VcenterConnection> {
  const password = login.passwordCommand !== undefined
    ? await runSecretCommand(login.passwordCommand, `the vCenter password command (${login.passwordFrom ?? 'passwordCommand'})`)
    : await resolvePassword({ passwordFile: login.passwordFile, passwordEnv: login.passwordEnv });
  return { url: login.vcenter, user: login.user, password, tls: await trust(login) };
}

/** What a job on a vCenter works with; `close` logs out. */
export interface VcenterJob {
  readonly connection: VcenterConnection;
  readonly repo: Repository;
  readonly session: VsphereSession;
  close(): Promise<void>;
}

/** Logs in for a job on `repo`. */
export async function startVcenterJob(connection: VcenterConnection, repo: Repository): Promise<VcenterJob> {
  const session = await connect(connection);
  return { connection, repo, session, close: () => session.close() };
}

/**
 * The password read, the repository opened (asking `repositoryPassword` when it is
 * encrypted), then logged in: in this order, so cheap mistakes fail first.
 */
export async function openVcenterJob(login: VcenterLogin, repository: string, repositoryPassword?: () => Promise<string>): Promise<VcenterJob> {
  const connection = await vcenterConnection(login);
  return startVcenterJob(connection, await openRepository(repository, repositoryPassword ? { password: repositoryPassword } : {}));
}
