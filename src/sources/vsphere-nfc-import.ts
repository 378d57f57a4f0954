/**
 * The nfc transport for restore: the VM is made by ImportVApp, whose lease gives one
 * upload URL per disk; each disk is POSTed as a streamOptimized VMDK
 * (vsphere/vmdk-stream-writer.ts), in disk order, only its data grains. This writes
 * every datastore kind (vSAN and vVols too, which /folder cannot). The lease is kept
 * alive with HttpNfcLeaseProgress while disks are sent, completed once every disk is
 * sent, and aborted on any failure (vCenter then removes the VM the import made).
 *
 * A disk can be read back only once the import lease is complete: the restore job
 * sends every disk first (MachineUnderRestore.written), then the disks are read back
 * through an ExportVm lease on the new, powered-off VM, with the backup half's stream
 * reader (sources/vsphere-nfc.ts).
 */
import https from 'node:https';
import { IoError, describeCause } from '../errors.js';
import { answerText } from '../vsphere/datastore.js';
import { EarlyResponseError, type HttpUpload, httpUpload } from '../vsphere/http.js';
import { clearImportLease, recordImportLease } from '../vsphere/import-lease-record.js';
import { type ImportPlace, type NfcDevice, type NfcLeaseInfo, abortLease, completeLease, exportVm, importVApp, leaseProgress, waitLeaseReady } from '../vsphere/nfc-lease.js';
import { retrieveOne } from '../vsphere/property-collector.js';
import type { VsphereSession } from '../vsphere/session.js';
import { agentFor } from '../vsphere/tls.js';
import { StreamVmdkWriter } from '../vsphere/vmdk-stream-writer.js';
import { type Fields, type MoRef, type XmlNode, at, children, moRefOf, numberAt, xsiType } from '../vsphere/xml.js';
import { NfcDiskReader, SharedLease, diskKeysOf } from './vsphere-nfc.js';
import { type VmDisk, type VmDiskTarget, vmDiskLabel } from './vsphere-target.js';

function configDiskBytes(config: XmlNode | undefined): number {
  return children(at(config, 'hardware'), 'device').filter((x) => xsiType(x) === 'VirtualDisk')
    .reduce((n, x) => n + (numberAt(x, 'capacityInBytes') ?? (numberAt(x, 'capacityInKB') ?? 0) * 1024), 0);
}

/** One ImportVApp: its lease, the disks being sent, then the export lease that reads them back. */
export class NfcImport {
  private timer: NodeJS.Timeout | undefined;
  private keepAliveError: unknown;
  private live = true;
  private sent = 0;
  private exported: SharedLease | undefined;
  private readonly agents = new Map<string, https.Agent>();

  private constructor(readonly session: VsphereSession, readonly info: NfcLeaseInfo, readonly vm: MoRef,
    private readonly diskKeyOf: ReadonlyMap<string, number>, private readonly totalBytes: number, private readonly what: string) {
    // Well inside the timeout, as for export leases: a slow vCenter answer must not let it lapse.
    const every = Math.max(250, (info.timeoutSeconds * 1000) / 3);
    this.timer = setInterval(() => { void this.keepAlive(); }, every);
  }

  /** ImportVApp, then its lease once ready; the VM the import made is `vm`. A lease that never gets ready is aborted. */
  static async start(session: VsphereSession, place: ImportPlace, spec: Fields, what: string): Promise<NfcImport> {
    const lease = await importVApp(session, place, spec, what);
    const vmName = typeof spec['name'] === 'string' ? spec['name'] : what;
    try {
      // Recorded before any upload, so that the next run can abort it if this one is killed (import-lease-record.ts).
      await recordImportLease(session, lease, vmName);
      const info = await waitLeaseReady(session, lease, what);
      const vm = moRefOf(at((await retrieveOne(session, lease, ['info'])).get('info'), 'entity'));
      if (!vm) throw new IoError(`${what}: import lease ${lease.value} names no VM`);
      await recordImportLease(session, lease, vmName, vm);
      const config = (await retrieveOne(session, vm, ['config'])).get('config');
      return new NfcImport(session, info, vm, diskKeysOf(config, info), configDiskBytes(config), what);
    } catch (err) {
      await abortLease(session, lease).catch(() => {});
      await clearImportLease(session, lease).catch(() => {});
      throw err;
    }
  }

  private async keepAlive(): Promise<void> {
    try {
      await leaseProgress(this.session, this.info.lease, this.totalBytes > 0 ? (100 * this.sent) / this.totalBytes : 0);
    } catch (err) {
      this.keepAliveError ??= err;
    }
  }

  private stopKeepAlive(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Throws when keeping the lease alive failed: its URLs may be dead. */
  check(what: string): void {
    if (this.keepAliveError !== undefined) {
      throw new IoError(`${what}: import lease ${this.info.lease.value} could not be kept alive: ${describeCause(this.keepAliveError)}`);
    }
  }

  noteSent(n: number): void {
    this.sent += n;
  }

  agentFor(device: NfcDevice): https.Agent {
    const t = device.sslThumbprint;
    if (!t) return this.session.httpsAgent;
    let agent = this.agents.get(t);
    if (!agent) this.agents.set(t, (agent = agentFor({ kind: 'pinned', thumbprint: t })));
    return agent;
  }

  /** The upload target of a disk of the imported VM. */
  async openDisk(d: VmDisk): Promise<VmDiskTarget> {
    const what = vmDiskLabel(d);
    const device = this.info.devices.find((x) => this.diskKeyOf.get(x.key) === d.disk.key);
    if (!device) {
      throw new IoError(`import lease ${this.info.lease.value} of VM ${d.vm.name} has no URL for ${what} (devices: ${this.info.devices.map((x) => x.key).join(', ') || 'none'})`);
    }
    return new NfcUploadTarget(this, d, device, what);
  }

  /** Every disk is sent: completes the import lease, then opens an ExportVm lease to read the disks back. */
  async written(): Promise<void> {
    this.check(this.what);
    this.stopKeepAlive();
    this.live = false;
    try {
      await completeLease(this.session, this.info.lease);
      await clearImportLease(this.session, this.info.lease);
    } catch (err) {
      throw new IoError(`completing import lease ${this.info.lease.value} failed: ${describeCause(err)}`, { cause: err });
    }
    const what = `reading back the disks of ${this.what}`;
    const lease = await exportVm(this.session, this.vm, what);
    try {
      const info = await waitLeaseReady(this.session, lease, what);
      const config = (await retrieveOne(this.session, this.vm, ['config'])).get('config');
      this.exported = new SharedLease(this.session, info, diskKeysOf(config, info), configDiskBytes(config), () => {});
    } catch (err) {
      await abortLease(this.session, lease).catch(() => {});
      throw err;
    }
  }

  /** A reader of a disk through the export lease (after `written`). */
  reader(disk: VmDisk, what: string): NfcDiskReader {
    const lease = this.exported;
    if (!lease) throw new IoError(`${what}: read back before every disk of the import was sent`);
    const device = lease.info.devices.find((x) => lease.diskKeyOf.get(x.key) === disk.disk.key);
    if (!device) throw new IoError(`export lease ${lease.info.lease.value} of VM ${disk.vm.name} has no URL for ${what}`);
    return new NfcDiskReader(lease, lease.agentFor(device), device.url, disk.disk.capacity, what);
  }

  /** After a failure: aborts the import lease if it is still held (vCenter removes the VM) or the export lease. */
  async abort(): Promise<void> {
    this.stopKeepAlive();
    for (const a of this.agents.values()) a.destroy();
    if (this.live) {
      this.live = false;
      try {
        await abortLease(this.session, this.info.lease);
      } finally {
        // Aborted, or it cannot be (it timed out): either way nothing is left to abort later.
        await clearImportLease(this.session, this.info.lease).catch(() => {});
      }
    }
    if (this.exported) await this.exported.releaseIfUnused().catch(() => {});
  }
}

/** One disk of an import: a streamOptimized VMDK POSTed to the lease's URL as the job writes it. */
class NfcUploadTarget implements VmDiskTarget {
  readonly zeroed = true;
  readonly sequential = true;
  readonly size: number;
  readonly description: string;
  private readonly upload: HttpUpload;
  private readonly writer: StreamVmdkWriter;
  private ended = false;
  private read: NfcDiskReader | undefined;

  constructor(private readonly imp: NfcImport, private readonly disk: VmDisk, device: NfcDevice, private readonly what: string) {
    this.size = disk.disk.capacity;
    this.description = `nfc:${imp.info.lease.value}${device.url.pathname.replace(/^.*\//, '/')}`;
    this.upload = httpUpload(imp.agentFor(device), {
      url: device.url, length: undefined, method: 'POST', headers: { 'content-type': 'application/x-vnd.vmware-streamVmdk' },
    });
    this.writer = new StreamVmdkWriter(this.size, (chunk) => this.send(chunk));
  }

  private async send(chunk: Buffer): Promise<void> {
    try {
      await this.upload.write(chunk);
    } catch (err) {
      const answer = err instanceof EarlyResponseError ? `HTTP ${err.response.status}: ${answerText(err.response)}` : describeCause(err);
      throw new IoError(`writing ${this.what} to ${this.description} failed: ${answer}`, { cause: err });
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.imp.check(`writing ${this.what}`);
    await this.writer.write(offset, data);
    this.imp.noteSent(data.length);
  }

  async zero(): Promise<void> {
    // Grains not sent read as zeros on the imported disk.
  }

  async flush(): Promise<void> {
    if (this.ended) return;
    await this.writer.finish();
    this.ended = true;
    let status: number;
    let text: string;
    try {
      const res = await this.upload.end();
      status = res.status;
      text = answerText(res);
    } catch (err) {
      throw new IoError(`writing ${this.what} to ${this.description} failed: ${describeCause(err)}`, { cause: err });
    }
    if (status < 200 || status > 299) throw new IoError(`writing ${this.what} to ${this.description} failed: HTTP ${status}${text ? `: ${text}` : ''}`);
  }

  async readBack(offset: number, length: number, into: Buffer): Promise<void> {
    this.read ??= this.imp.reader(this.disk, this.what);
    await this.read.read(offset, length, into);
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.upload.abort();
    }
    await this.read?.close();
  }
}
