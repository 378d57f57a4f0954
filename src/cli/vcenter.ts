/** vCenter connection options shared by the commands that talk to vSphere. */
import type { Command } from 'commander';
import type { VcenterLogin } from '../app/vcenter.js';
import { UsageError } from '../errors.js';

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

/** The login the flags describe; every flag it needs must be there. */
export function vcenterLogin(opts: VcenterOptions): VcenterLogin {
  if (!opts.vcenter) throw new UsageError('--vcenter is required');
  if (!opts.user) throw new UsageError('--user is required with --vcenter');
  if (!opts.passwordFile) throw new UsageError('--password-file is required with --vcenter');
  if (opts.thumbprint && opts.insecure) throw new UsageError('--thumbprint and --insecure exclude each other');
  return { vcenter: opts.vcenter, user: opts.user, passwordFile: opts.passwordFile, thumbprint: opts.thumbprint, insecure: opts.insecure };
}
