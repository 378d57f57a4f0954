/**
 * The nfc transport: reads a snapshot's disks through an export lease (ExportSnapshot →
 * HttpNfcLease), which works on every datastore kind — vSAN and vVols disks have no
 * flat file for the https transport to read. One lease serves all disks of a snapshot;
 * it is kept alive with HttpNfcLeaseProgress while disks are read, and completed when
 * the last disk is closed (aborted when a read failed). The lease is recorded on the
 * snapshot (SnapshotDisk.noteLease), so that the next run aborts one a killed run left.
 *
 * A lease's URL gives the disk as a streamOptimized VMDK, generated as it is sent: no
 * length and no random access. Reads are served from one pass over the stream, which
 * vmbkp's ascending reads follow; a read behind the stream starts it again. An incr
 * still reads only CBT's changed areas into the repository, but the stream passes over
 * the whole disk (its holes are not sent).
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { IoError, describeCause } from '../errors.js';
import { agentFor } from '../vsphere/tls.js';
import { type NfcDevice, type NfcLeaseInfo, abortLease, completeLease, deviceSlot, exportSnapshot, leaseProgress, waitLeaseReady } from '../vsphere/nfc-lease.js';
import { retrieveOne } from '../vsphere/property-collector.js';
import type { VsphereSession } from '../vsphere/session.js';
import { type StreamGrain, streamGrains } from '../vsphere/vmdk-stream.js';
import { type XmlNode, at, children, numberAt, xsiType } from '../vsphere/xml.js';
import { type DiskReader, type SnapshotDisk, VsphereDiskSource, diskLabel } from './vsphere.js';

/** A dropped stream is started again this often before the read fails. */
const STREAM_ATTEMPTS = 3;

/** One lease on one snapshot, shared by the readers of its disks. */
export class SharedLease {
  private users = 0;
  private failed = false;
  private keepAliveError: unknown;
  private readonly timer: NodeJS.Timeout;
  private readonly readers = new Set<NfcDiskReader>();
  private readonly agents = new Map<string, https.Agent>();

  constructor(readonly session: VsphereSession, readonly info: NfcLeaseInfo, readonly diskKeyOf: ReadonlyMap<string, number>,
    private readonly totalBytes: number, private readonly onEnd: () => void) {
    // Well inside the timeout: a slow vCenter answer must not let the lease lapse.
    const every = Math.max(250, (info.timeoutSeconds * 1000) / 3);
    this.timer = setInterval(() => { void this.keepAlive(); }, every);
  }

  private async keepAlive(): Promise<void> {
    let done = 0;
    for (const r of this.readers) done += r.position;
    try {
      await leaseProgress(this.session, this.info.lease, this.totalBytes > 0 ? (100 * done) / this.totalBytes : 0);
    } catch (err) {
      this.keepAliveError ??= err;
    }
  }

  /** Throws when keeping the lease alive failed: its URLs may be dead. */
  check(what: string): void {
    if (this.keepAliveError !== undefined) {
      throw new IoError(`${what}: export lease ${this.info.lease.value} could not be kept alive: ${describeCause(this.keepAliveError)}`);
    }
  }

  /**
   * How to reach a device's URL: pinned to the thumbprint the lease gives for its host
   * (an ESXi host's own certificate; vCenter vouches for it over the API session), else
   * as the API session reaches vCenter.
   */
  agentFor(device: NfcDevice): https.Agent {
    const t = device.sslThumbprint;
    if (!t) return this.session.httpsAgent;
    let agent = this.agents.get(t);
    if (!agent) {
      agent = agentFor({ kind: 'pinned', thumbprint: t });
      this.agents.set(t, agent);
    }
    return agent;
  }

  attach(r: NfcDiskReader): void {
    this.users++;
    this.readers.add(r);
  }

  /** A reader is done (failed: a read of it failed); the last one ends the lease. */
  async detach(r: NfcDiskReader, failed: boolean): Promise<void> {
    this.failed ||= failed;
    this.readers.delete(r);
    if (--this.users > 0) return;
    await this.release(this.failed);
  }

  /** Ends a lease no reader took (a disk it has no URL for failed the open). */
  async releaseIfUnused(): Promise<void> {
    if (this.users === 0) await this.release(true);
  }

  async release(failed: boolean): Promise<void> {
    clearInterval(this.timer);
    for (const agent of this.agents.values()) agent.destroy();
    this.onEnd();
    const lease = this.info.lease;
    try {
      await (failed ? abortLease(this.session, lease) : completeLease(this.session, lease));
    } catch (err) {
      throw new IoError(`${failed ? 'aborting' : 'completing'} export lease ${lease.value} failed: ${describeCause(err)}`, { cause: err });
    }
  }
}

interface PendingRead {
  readonly offset: number;
  readonly end: number;
  readonly into: Buffer;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

function openStream(agent: https.Agent, url: URL, what: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent }, (res) => {
      if (res.statusCode === 200) {
        resolve(res);
        return;
      }
      res.resume();
      reject(new IoError(`${what}: GET ${url.pathname} answered HTTP ${res.statusCode}`
        + (res.statusCode === 404 ? ' (the export lease has ended: timed out or aborted)' : '')));
    });
    req.on('error', (err) => reject(new IoError(`${what}: GET ${url.pathname} failed: ${describeCause(err)}`, { cause: err })));
  });
}

/** Serves reads of one disk from a forward pass over its stream. */
export class NfcDiskReader implements DiskReader {
  readonly description: string;
  /** Where the stream has been consumed to: reads that start below need a new pass. */
  position = 0;
  private pending: PendingRead[] = [];
  private held: StreamGrain | undefined;
  private res: IncomingMessage | undefined;
  private grains: AsyncGenerator<StreamGrain> | undefined;
  private rewind = false;
  private pumping = false;
  private failed = false;
  private closed = false;

  constructor(private readonly lease: SharedLease, private readonly agent: https.Agent, private readonly url: URL,
    private readonly capacity: number, private readonly what: string) {
    this.description = `nfc:${lease.info.lease.value}${url.pathname.replace(/^.*\//, '/')}`;
    lease.attach(this);
  }

  read(offset: number, length: number, into: Buffer): Promise<void> {
    into.fill(0, 0, length); // what no grain covers is a hole
    return new Promise((resolve, reject) => {
      if (offset < this.position) this.rewind = true;
      this.pending.push({ offset, end: offset + length, into, resolve, reject });
      void this.pump();
    });
  }

  private stopStream(): void {
    this.res?.destroy();
    this.res = undefined;
    this.grains = undefined;
    this.held = undefined;
    this.position = 0;
  }

  private async nextGrain(): Promise<StreamGrain | undefined> {
    if (!this.grains) {
      this.res = await openStream(this.agent, this.url, this.what);
      this.grains = streamGrains(this.res, this.capacity, `reading ${this.what} from ${this.description}`);
    }
    const r = await this.grains.next();
    return r.done ? undefined : r.value;
  }

  /** Resolves the reads that end at or before `upTo` (everything below it has been seen). */
  private settle(upTo: number): void {
    const done = this.pending.filter((p) => p.end <= upTo);
    if (done.length === 0) return;
    this.pending = this.pending.filter((p) => p.end > upTo);
    for (const p of done) p.resolve();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    let attempt = 1;
    try {
      while (this.pending.length > 0) {
        if (this.rewind) {
          this.rewind = false;
          this.stopStream();
        }
        this.lease.check(`reading ${this.what}`);
        let g: StreamGrain | undefined;
        try {
          g = this.held ?? await this.nextGrain();
        } catch (err) {
          if (attempt++ >= STREAM_ATTEMPTS) {
            throw new IoError(`reading ${this.what} from ${this.description} failed after ${STREAM_ATTEMPTS} attempts: ${describeCause(err)}`, { cause: err });
          }
          this.rewind = true; // a dropped stream: start it again
          continue;
        }
        this.held = undefined;
        if (this.rewind) continue; // a read behind arrived meanwhile: this grain comes again
        this.settle(g ? g.offset : this.capacity);
        if (!g) {
          this.position = this.capacity;
          continue;
        }
        if (this.pending.length === 0) {
          this.held = g; // nobody needs it yet: keep it for the next read
          this.position = g.offset;
          break;
        }
        for (const p of this.pending) {
          const from = Math.max(p.offset, g.offset);
          const to = Math.min(p.end, g.offset + g.data.length);
          if (from < to) g.data.copy(p.into, from - p.offset, from - g.offset, to - g.offset);
        }
        this.position = g.offset + g.data.length;
        this.settle(this.position);
      }
    } catch (err) {
      this.failed = true;
      this.stopStream();
      const waiting = this.pending;
      this.pending = [];
      for (const p of waiting) p.reject(err);
    } finally {
      this.pumping = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopStream();
    await this.lease.detach(this, this.failed);
  }
}

/** The disk key of each lease device, by controller (type, bus) and unit in the snapshot's configuration. */
export function diskKeysOf(config: XmlNode | undefined, info: NfcLeaseInfo): Map<string, number> {
  const devices = children(at(config, 'hardware'), 'device');
  const keys = new Map<string, number>();
  for (const dev of info.devices) {
    const slot = deviceSlot(dev.key);
    if (!dev.disk || !slot) continue;
    const controller = devices.find((d) => xsiType(d) === slot.controllerType && numberAt(d, 'busNumber') === slot.bus);
    const disk = devices.find((d) => xsiType(d) === 'VirtualDisk' && numberAt(d, 'controllerKey') === numberAt(controller, 'key')
      && numberAt(d, 'unitNumber') === slot.unit);
    const key = numberAt(disk, 'key');
    if (controller && key !== undefined) keys.set(dev.key, key);
  }
  return keys;
}

/** Opens disks through export leases, one per snapshot (shared by its disks). */
export function nfcDiskOpener(): (d: SnapshotDisk) => Promise<VsphereDiskSource> {
  const leases = new Map<string, Promise<SharedLease>>();

  const leaseFor = (d: SnapshotDisk): Promise<SharedLease> => {
    const id = `${d.session.host}/${d.snapshot.value}`;
    let p = leases.get(id);
    if (!p) {
      p = (async () => {
        const what = `exporting snapshot ${d.snapshot.value} of VM ${d.vm.name}`;
        const ref = await exportSnapshot(d.session, d.snapshot, what);
        try {
          await d.noteLease?.(ref);
          const info = await waitLeaseReady(d.session, ref, what);
          const config = (await retrieveOne(d.session, d.snapshot, ['config'])).get('config');
          const total = children(at(config, 'hardware'), 'device').filter((x) => xsiType(x) === 'VirtualDisk')
            .reduce((n, x) => n + (numberAt(x, 'capacityInBytes') ?? (numberAt(x, 'capacityInKB') ?? 0) * 1024), 0);
          return new SharedLease(d.session, info, diskKeysOf(config, info), total, () => leases.delete(id));
        } catch (err) {
          leases.delete(id);
          await abortLease(d.session, ref).catch(() => {});
          throw err;
        }
      })();
      leases.set(id, p);
      p.catch(() => leases.delete(id));
    }
    return p;
  };

  return async (d) => {
    const what = diskLabel(d);
    const lease = await leaseFor(d);
    const device = lease.info.devices.find((x) => lease.diskKeyOf.get(x.key) === d.disk.key);
    if (!device) {
      await lease.releaseIfUnused().catch(() => {});
      throw new IoError(`export lease ${lease.info.lease.value} of VM ${d.vm.name} has no URL for ${what} `
        + `(devices: ${lease.info.devices.map((x) => x.key).join(', ') || 'none'})`);
    }
    return new VsphereDiskSource(d, new NfcDiskReader(lease, lease.agentFor(device), device.url, d.disk.capacity, what));
  };
}
