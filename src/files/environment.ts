/**
 * How libguestfs is run here. Its appliance is a QEMU VM: under KVM where the CPU offers
 * hardware virtualisation, else under TCG (software emulation). A /dev/kvm without vmx/svm
 * (a software-nested module) makes QEMU abort and libguestfs does not fall back by itself,
 * so the choice is made from the CPU flags. VMBKP_GUESTFS_TCG=1 forces TCG.
 */
import { readFileSync } from 'node:fs';

/** True when the appliance must run under TCG. */
export function needsTcg(env: NodeJS.ProcessEnv = process.env, cpuinfo?: string): boolean {
  if (env['VMBKP_GUESTFS_TCG'] === '1') return true;
  let text = cpuinfo;
  if (text === undefined) {
    try { text = readFileSync('/proc/cpuinfo', 'utf8'); } catch { return true; } // no /proc: no KVM either
  }
  return !/^flags\s*:.*\b(vmx|svm)\b/m.test(text);
}

/** The environment for guestfish and guestmount. */
export function guestfsEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!needsTcg(env)) return { ...env };
  return { ...env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };
}
