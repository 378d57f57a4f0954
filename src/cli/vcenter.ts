/** vCenter connection options shared by the commands that talk to vSphere. */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { resolvePassword } from '../recipe/password.js';
import type { VddkOptions } from '../sources/vsphere-vddk.js';
import { VsphereSession, sdkUrl } from '../vsphere/session.js';
import { type TlsPolicy, normalizeThumbprint, peerThumbprintSha1 } from '../vsphere/tls.js';

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
  // The recipe's passwordFile and --password-file are read alike.
  const password = await resolvePassword({ passwordFile: opts.passwordFile });
  return { url: opts.vcenter, user: opts.user, password, tls: tlsPolicy(opts.thumbprint, opts.insecure) };
}

/** Certificate trust from a thumbprint or insecure (flags or a recipe); the system CAs by default. */
export function tlsPolicy(thumbprint: string | undefined, insecure: boolean | undefined): TlsPolicy {
  return insecure ? { kind: 'insecure' }
    : thumbprint ? { kind: 'pinned', thumbprint: normalizeThumbprint(thumbprint) }
    : { kind: 'system' };
}

export function connect(c: VcenterConnection): Promise<VsphereSession> {
  return VsphereSession.connect({ url: c.url, user: c.user, password: c.password, tls: c.tls });
}

/**
 * What nbdkit's vddk plugin needs to reach the vCenter of `conn`: VDDK checks the server
 * by its SHA-1 thumbprint, read here (under the connection's own TLS policy).
 */
export async function vddkOptions(conn: VcenterConnection,
  vddk: { libdir?: string | undefined; transports?: string | undefined } = {}): Promise<VddkOptions> {
  const url = sdkUrl(conn.url);
  return {
    server: url.hostname, user: conn.user, password: conn.password, thumbprint: await peerThumbprintSha1(url, conn.tls),
    ...(vddk.libdir ? { libdir: vddk.libdir } : {}),
    ...(vddk.transports ? { transports: vddk.transports } : {}),
  };
}
