/**
 * Import leases held by this host's restores, recorded in a local state file: vSphere
 * offers no way to list leases, and while an import lease is unfinished the VM it made
 * cannot be removed. A restore killed with -9 cannot abort its lease; the next restore or
 * backup over the same vCenter reads the records of dead processes and aborts their
 * leases (abortLeftImportLeases). One file per lease, no secrets, mode 0600.
 *
 * The directory: VMBKP_STATE_DIR, else $XDG_STATE_HOME/vmbkp, else ~/.local/state/vmbkp;
 * records are under its `import-leases/`.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { type ProcessIdentity, ownerState, thisProcess } from '../process-identity.js';
import { abortLease } from './nfc-lease.js';
import type { VsphereSession } from './session.js';
import { MoRef } from './xml.js';

interface LeaseRecord extends ProcessIdentity {
  readonly vcenter: string;
  readonly lease: string;
  readonly vmName: string;
  readonly vm?: string;
  readonly recorded: string;
}

function stateDir(): string {
  const env = process.env;
  const base = env['VMBKP_STATE_DIR'] || path.join(env['XDG_STATE_HOME'] || path.join(homedir(), '.local', 'state'), 'vmbkp');
  return path.join(base, 'import-leases');
}

function recordPath(vcenter: string, lease: string): string {
  return path.join(stateDir(), `${`${vcenter}-${lease}`.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
}

/** Records (or updates, once the VM is known) the import lease of this process; atomic (write, then rename). */
export async function recordImportLease(session: VsphereSession, lease: MoRef, vmName: string, vm?: MoRef): Promise<void> {
  const rec: LeaseRecord = {
    ...thisProcess(), vcenter: session.host, lease: lease.value, vmName, ...(vm ? { vm: vm.value } : {}), recorded: new Date().toISOString(),
  };
  const file = recordPath(session.host, lease.value);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/** The lease is completed or aborted: its record goes. */
export async function clearImportLease(session: VsphereSession, lease: MoRef): Promise<void> {
  await rm(recordPath(session.host, lease.value), { force: true });
}

function parseRecord(text: string): LeaseRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<LeaseRecord>;
    if (typeof r.vcenter !== 'string' || typeof r.lease !== 'string' || typeof r.host !== 'string' || typeof r.pid !== 'number') return undefined;
    return r as LeaseRecord;
  } catch {
    return undefined;
  }
}

/**
 * Aborts the import leases on `session`'s vCenter recorded by processes of this host that
 * are gone (a lease already ended is fine), and removes their records. vCenter may then
 * remove the VM the import made; a VM left is removed as an unfinished restore.
 */
export async function abortLeftImportLeases(session: VsphereSession, warn: (m: string) => void): Promise<void> {
  const dir = stateDir();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const file = path.join(dir, name);
    const rec = parseRecord(await readFile(file, 'utf8').catch(() => ''));
    if (!rec || rec.vcenter !== session.host || ownerState(rec) !== 'dead') continue;
    try {
      await abortLease(session, new MoRef('HttpNfcLease', rec.lease));
      warn(`aborted import lease ${rec.lease} of VM ${rec.vmName}${rec.vm ? ` (${rec.vm})` : ''}, left by vmbkp process ${rec.pid}, which is gone`);
    } catch {
      // Ended already (completed, aborted, or timed out): nothing holds the VM.
    }
    await rm(file, { force: true });
  }
}
