/**
 * Export leases (HttpNfcLease): ExportSnapshot gives one on a snapshot's disks; once
 * ready, its info.deviceUrl lists a download URL per disk. The lease must be kept alive
 * with HttpNfcLeaseProgress (it times out after info.leaseTimeout seconds without a
 * call, about 5 minutes) and ended with HttpNfcLeaseComplete or HttpNfcLeaseAbort: while
 * it is held, vSphere blocks operations on the VM (the snapshot's removal among them).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { IoError } from '../errors.js';
import { VsphereFaultError } from './errors.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { type Fields, type MoRef, Typed, type XmlNode, boolAt, children, moRefOf, numberAt, text, textAt } from './xml.js';

export interface NfcDevice {
  /** vCenter's device id: `/<vm>/<ControllerType><bus>:<unit>`. */
  readonly key: string;
  readonly url: URL;
  readonly disk: boolean;
  /** SHA-1 thumbprint of the certificate of the host the URL refers to ("" or absent: none given). */
  readonly sslThumbprint: string | undefined;
}

export interface NfcLeaseInfo {
  readonly lease: MoRef;
  readonly timeoutSeconds: number;
  readonly devices: readonly NfcDevice[];
}

const READY_POLL_MS = 200;
const READY_WAIT_MS = 300_000;

/** Starts exporting a snapshot's disks: the lease, still initializing. */
export async function exportSnapshot(session: VsphereSession, snapshot: MoRef, what: string): Promise<MoRef> {
  const lease = moRefOf(children(await session.call('ExportSnapshot', snapshot), 'returnval')[0]);
  if (!lease) throw new VsphereFaultError(`${what}: ExportSnapshot returned no lease`, 'InvalidResponse');
  return lease;
}

/** The URL of a device, with vCenter's "*" host replaced by the host vmbkp talks to (as the API reference says). */
function deviceUrl(session: VsphereSession, raw: string): URL {
  return new URL(raw.replace(/^(https?:\/\/)\*(?=[:/])/, `$1${session.url.hostname}`));
}

/** Waits until the lease is ready and returns its info; a lease that fails is an error naming the cause. */
export async function waitLeaseReady(session: VsphereSession, lease: MoRef, what: string): Promise<NfcLeaseInfo> {
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    const props = await retrieveOne(session, lease, ['state', 'info', 'error']);
    const state = text(props.get('state'));
    if (state === 'ready') return leaseInfo(session, lease, props.get('info'));
    if (state === 'error' || state === 'done') {
      const cause = textAt(props.get('error'), 'localizedMessage') || state;
      throw new IoError(`${what}: export lease ${lease.value} ${state === 'done' ? 'ended' : 'failed'} before it was ready: ${cause}`);
    }
    if (Date.now() > deadline) throw new IoError(`${what}: export lease ${lease.value} was not ready within ${READY_WAIT_MS / 1000} s`);
    await sleep(READY_POLL_MS);
  }
}

function leaseInfo(session: VsphereSession, lease: MoRef, info: XmlNode | undefined): NfcLeaseInfo {
  return {
    lease,
    timeoutSeconds: numberAt(info, 'leaseTimeout') ?? 300,
    devices: children(info, 'deviceUrl').map((d) => ({
      key: textAt(d, 'key') ?? '', url: deviceUrl(session, textAt(d, 'url') ?? ''), disk: boolAt(d, 'disk') === true,
      sslThumbprint: textAt(d, 'sslThumbprint') || undefined,
    })),
  };
}

/** Reports progress, which also keeps the lease alive. */
export async function leaseProgress(session: VsphereSession, lease: MoRef, percent: number): Promise<void> {
  await session.call('HttpNfcLeaseProgress', lease, { percent: Math.max(0, Math.min(100, Math.floor(percent))) });
}

export async function completeLease(session: VsphereSession, lease: MoRef): Promise<void> {
  await session.call('HttpNfcLeaseComplete', lease);
}

export async function abortLease(session: VsphereSession, lease: MoRef): Promise<void> {
  await session.call('HttpNfcLeaseAbort', lease);
}

/** The controller type, bus and unit of a device key (`/vm-42/ParaVirtualSCSIController0:1`). */
export function deviceSlot(key: string): { controllerType: string; bus: number; unit: number } | undefined {
  const m = /\/([A-Za-z]+?)(\d+):(\d+)$/.exec(key);
  return m ? { controllerType: m[1]!, bus: Number(m[2]), unit: Number(m[3]) } : undefined;
}

/** Starts exporting a powered-off VM's current disks (ExportVm): the lease, still initializing. */
export async function exportVm(session: VsphereSession, vm: MoRef, what: string): Promise<MoRef> {
  const lease = moRefOf(children(await session.call('ExportVm', vm), 'returnval')[0]);
  if (!lease) throw new VsphereFaultError(`${what}: ExportVm returned no lease`, 'InvalidResponse');
  return lease;
}

export interface ImportPlace {
  readonly pool: MoRef;
  readonly folder: MoRef;
  readonly host: MoRef | undefined;
}

/**
 * Imports a VM (ResourcePool.ImportVApp with a VirtualMachineImportSpec): vCenter creates
 * the VM from `configSpec` and returns a lease whose device URLs take its disks as
 * streamOptimized VMDKs. The VM exists from here on; aborting the lease removes it.
 */
export async function importVApp(session: VsphereSession, place: ImportPlace, configSpec: Fields, what: string): Promise<MoRef> {
  const res = await session.call('ImportVApp', place.pool, {
    spec: new Typed('VirtualMachineImportSpec', { configSpec }), folder: place.folder, host: place.host,
  });
  const lease = moRefOf(children(res, 'returnval')[0]);
  if (!lease) throw new VsphereFaultError(`${what}: ImportVApp returned no lease`, 'InvalidResponse');
  return lease;
}
