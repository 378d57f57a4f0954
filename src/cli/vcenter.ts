/** vCenter connection options shared by the commands that talk to vSphere. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { InputError, UsageError, describeCause } from '../errors.js';
import { VsphereSession } from '../vsphere/session.js';
import { type TlsPolicy, normalizeThumbprint } from '../vsphere/tls.js';

export interface VcenterOptions {
  vcenter?: string;
  user?: string;
  passwordFile?: string;
  thumbprint?: string;
  insecure?: boolean;
}

export function addVcenterOptions(cmd: Command): Command {
  return cmd
    .option('--vcenter <url>', 'vCenter or ESXi: https://HOST[/sdk]')
    .option('--user <name>', 'vCenter user')
    .option('--password-file <file>', "file holding the user's password (first line); never pass a password as an argument")
    .option('--thumbprint <hex>', "trust the server whose certificate has this SHA-256 or SHA-1 thumbprint")
    .option('--insecure', 'do not verify the server certificate at all');
}

export interface VcenterConnection {
  readonly url: string;
  readonly user: string;
  readonly password: string;
  readonly tls: TlsPolicy;
}

export async function vcenterConnection(opts: VcenterOptions): Promise<VcenterConnection> {
  if (!opts.vcenter) throw new UsageError('--vcenter is required');
  if (!opts.user) throw new UsageError('--user is required with --vcenter');
  if (!opts.passwordFile) throw new UsageError('--password-file is required with --vcenter');
  if (opts.thumbprint && opts.insecure) throw new UsageError('--thumbprint and --insecure exclude each other');
  let password: string;
  try {
    password = (await readFile(opts.passwordFile, 'utf8')).split(/\r?\n/)[0] ?? '';
  } catch (err) {
    throw new InputError(`reading password file ${opts.passwordFile} failed: ${describeCause(err)}`, { cause: err });
  }
  if (password === '') throw new InputError(`password file ${opts.passwordFile} is empty`);
  const tls: TlsPolicy = opts.insecure ? { kind: 'insecure' }
    : opts.thumbprint ? { kind: 'pinned', thumbprint: normalizeThumbprint(opts.thumbprint) }
    : { kind: 'system' };
  return { url: opts.vcenter, user: opts.user, password, tls };
}

export function connect(c: VcenterConnection): Promise<VsphereSession> {
  return VsphereSession.connect({ url: c.url, user: c.user, password: c.password, tls: c.tls });
}
