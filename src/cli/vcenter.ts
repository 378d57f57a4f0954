/** vCenter connection options shared by the commands that talk to vSphere; app/settings.ts merges them with the environment and the config file. */
import type { Command } from 'commander';
import type { VcenterLogin } from '../app/vcenter.js';
import { UsageError } from '../errors.js';
import { loadedConfig } from './context.js';

export interface VcenterOptions {
  vcenter?: string;
  user?: string;
  passwordFile?: string;
  thumbprint?: string;
  caFile?: string;
  insecure?: boolean;
}

export function addVcenterOptions(cmd: Command): Command {
  return cmd
    .option('--vcenter <url|name>', 'vCenter or ESXi: https://HOST[/sdk], or the name of a vCenter in the config file (or set VMBKP_VCENTER, or defaults.vcenter)')
    .option('--user <name>', 'vCenter user (or VMBKP_VCENTER_USER)')
    .option('--password-file <file>', "file holding the user's password (first line; or VMBKP_VCENTER_PASSWORD_FILE, VMBKP_VCENTER_PASSWORD_COMMAND); never pass a password as an argument")
    .option('--thumbprint <hex>', 'trust the server whose certificate has this SHA-256 or SHA-1 thumbprint (or VMBKP_VCENTER_THUMBPRINT)')
    .option('--ca-file <pem>', "trust certificates signed by the CAs in this PEM file instead of the system's (or VMBKP_VCENTER_CA_FILE)")
    .option('--insecure', 'do not verify the server certificate at all (or VMBKP_VCENTER_INSECURE=1)');
}

/** The login the flags, the environment and the config file describe; every setting it needs must be there. */
export async function vcenterLogin(opts: VcenterOptions, needs: string): Promise<VcenterLogin> {
  const { vcenterLoginOf, vcenterSettings } = await import('../app/settings.js');
  const s = vcenterSettings(await loadedConfig(), opts);
  if (!s) throw new UsageError(`${needs} needs a vCenter: give --vcenter URL or NAME, set VMBKP_VCENTER, or set defaults.vcenter in the config file`);
  return vcenterLoginOf(s);
}
