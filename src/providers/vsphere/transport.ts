/**
 * How the disks of a vSphere VM are read and written: `https` (the datastore's /folder
 * URLs, needs nothing from VMware) or `vddk` (nbdkit's vddk plugin). Chosen once per job,
 * from flags or a recipe (by src/app).
 */
import type { OpenVmDisk } from '../../sources/vsphere-target.js';
import { openHttpsDisk } from '../../sources/vsphere-https.js';
import { nfcDiskOpener } from '../../sources/vsphere-nfc.js';
import { openUploadTarget } from '../../sources/vsphere-upload.js';
import { type VddkOptions, openVddkDisk } from '../../sources/vsphere-vddk.js';
import { openVddkTarget } from '../../sources/vsphere-vddk-target.js';
import { sdkUrl } from '../../vsphere/session.js';
import { peerThumbprintSha1 } from '../../vsphere/tls.js';
import type { OpenDisk } from './backup-vm.js';
import type { VcenterConnection } from './connection.js';

export const TRANSPORTS = ['https', 'nfc', 'vddk'] as const;
export type Transport = (typeof TRANSPORTS)[number];

export function isTransport(s: string): s is Transport {
  return (TRANSPORTS as readonly string[]).includes(s);
}

/** Where VMware's VDDK is and which of its transport modes to try (`--vddk-libdir`, `--vddk-transports`, a recipe's `vddk`). */
export interface VddkSettings {
  readonly libdir?: string | undefined;
  readonly transports?: string | undefined;
}

/**
 * What nbdkit's vddk plugin needs to reach the vCenter of `conn`: VDDK checks the server
 * by its SHA-1 thumbprint, read here (under the connection's own TLS policy).
 */
export async function vddkOptions(conn: VcenterConnection, vddk: VddkSettings = {}): Promise<VddkOptions> {
  const url = sdkUrl(conn.url);
  return {
    server: url.hostname, user: conn.user, password: conn.password, thumbprint: await peerThumbprintSha1(url, conn.tls),
    ...(vddk.libdir ? { libdir: vddk.libdir } : {}),
    ...(vddk.transports ? { transports: vddk.transports } : {}),
  };
}

/** How snapshot disks are read for a backup. */
export async function snapshotDiskOpener(conn: VcenterConnection, transport: Transport, vddk: VddkSettings = {}): Promise<OpenDisk> {
  if (transport === 'nfc') return nfcDiskOpener();
  if (transport !== 'vddk') return openHttpsDisk;
  const opts = await vddkOptions(conn, vddk);
  return (d) => openVddkDisk(d, opts);
}

/** How the disks of a restored VM are written: upload through /folder, or a writable nbdkit vddk. */
export async function vmDiskOpener(conn: VcenterConnection, transport: Transport, vddk: VddkSettings = {}): Promise<OpenVmDisk> {
  // nfc has no opener of its own: the import lease's URLs are per VM (restore-vm-create.ts).
  if (transport !== 'vddk') return openUploadTarget;
  const opts = await vddkOptions(conn, vddk);
  return (d) => openVddkTarget(d, opts);
}

/** The nfc transport makes the restored VM by ImportVApp and writes its disks through that lease. */
export function importsVm(transport: Transport): boolean {
  return transport === 'nfc';
}

/** The https transport writes every byte of a disk: a thin disk then takes its whole capacity. */
export function writesWholeDisk(transport: Transport): boolean {
  return transport === 'https';
}
