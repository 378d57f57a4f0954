/**
 * The https transport for restore: a VM disk's flat file replaced through the
 * datastore's `/folder` URL with one HTTP PUT of the whole capacity, streamed in disk
 * order (holes sent as zeros), with the session cookie. Needs nothing from VMware.
 * Read back through ranged GETs of the same URL.
 *
 * A PUT cannot be resumed: a failure in the middle fails the disk, and the restore
 * starts over. On VMFS every byte sent is allocated, so a thin disk restored this way
 * occupies its whole capacity (the vddk transport writes only data).
 */
import { IoError, InputError, type VmbkpError, describeCause } from '../errors.js';
import { answerText, flatFileOf, folderForbidden, folderUrl, openDatastoreUpload, parseDatastorePath, readDatastoreRange } from '../vsphere/datastore.js';
import { EarlyResponseError, type HttpUpload } from '../vsphere/http.js';
import type { VsphereSession } from '../vsphere/session.js';
import { type VmDisk, type VmDiskTarget, vmDiskLabel } from './vsphere-target.js';

const ZEROS = Buffer.alloc(1024 * 1024);

export class DatastoreUploadTarget implements VmDiskTarget {
  readonly zeroed = true;
  readonly sequential = true;
  private pos = 0;
  private done = false;

  private constructor(private readonly session: VsphereSession, private readonly url: URL, private readonly upload: HttpUpload,
    readonly size: number, readonly description: string, private readonly what: string) {}

  static async open(d: VmDisk): Promise<DatastoreUploadTarget> {
    const what = vmDiskLabel(d);
    if (!d.disk.backingType.startsWith('VirtualDiskFlat')) {
      throw new InputError(`${what} has a ${d.disk.backingType} backing: the https transport writes flat disks only; use --transport vddk`);
    }
    if (d.disk.hasParent) throw new InputError(`${what} has snapshots: the https transport writes base disks only; remove them first`);
    const file = parseDatastorePath(d.disk.fileName);
    const flat = { datastore: file.datastore, path: flatFileOf(file.path) };
    const url = folderUrl(d.session, d.datacenterPath, flat);
    const upload = await openDatastoreUpload(d.session, url, d.disk.capacity);
    return new DatastoreUploadTarget(d.session, url, upload, d.disk.capacity, `https:[${flat.datastore}] ${flat.path}`, what);
  }

  private failed(err: unknown): VmbkpError {
    if (err instanceof EarlyResponseError) return this.refused(err.response.status, answerText(err.response));
    return new IoError(`writing ${this.what} to ${this.description} failed at offset ${this.pos}: ${describeCause(err)}`, { cause: err });
  }

  private refused(status: number, text: string): VmbkpError {
    if (status === 403) return folderForbidden(this.session, 'PUT', this.url);
    const hint = status === 401 ? ' (the session was refused; log in again and restore again)' : '';
    return new IoError(`writing ${this.what} to ${this.description} failed: HTTP ${status}${text ? `: ${text}` : ''}${hint}`);
  }

  private async send(data: Uint8Array): Promise<void> {
    try {
      await this.upload.write(data);
    } catch (err) {
      throw this.failed(err);
    }
    this.pos += data.length;
  }

  /** Sends zeros up to `to`. */
  private async fill(to: number): Promise<void> {
    while (this.pos < to) await this.send(ZEROS.subarray(0, Math.min(ZEROS.length, to - this.pos)));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.pos) throw new IoError(`writing ${this.what}: offset ${offset} comes after ${this.pos}; an upload is written in disk order`);
    if (offset + data.length > this.size) throw new IoError(`writing ${this.what}: ${data.length} bytes at ${offset} go past the end of the disk (${this.size})`);
    await this.fill(offset);
    // The stream keeps what it is given until it is sent: give it a copy, the caller reuses its buffer.
    await this.send(Buffer.from(data));
  }

  async zero(offset: number, length: number): Promise<void> {
    if (offset < this.pos) throw new IoError(`writing ${this.what}: offset ${offset} comes after ${this.pos}; an upload is written in disk order`);
    await this.fill(offset + length);
  }

  /** Sends the rest of the disk as zeros and waits for the server to store the file. */
  async flush(): Promise<void> {
    if (this.done) return;
    await this.fill(this.size);
    let status: number;
    let text: string;
    try {
      const res = await this.upload.end();
      status = res.status;
      text = answerText(res);
    } catch (err) {
      throw this.failed(err);
    }
    if (status < 200 || status > 299) throw this.refused(status, text);
    this.done = true;
  }

  async readBack(offset: number, length: number, into: Buffer): Promise<void> {
    await readDatastoreRange(this.session, this.url, offset, length, into, { what: `reading back ${this.what}` });
  }

  async close(): Promise<void> {
    if (!this.done) this.upload.abort();
  }

  async discard(): Promise<void> {
    // The file belongs to the VM: removing the VM removes it. Only the stream ends here.
    await this.close();
  }
}

export const openUploadTarget = (d: VmDisk): Promise<VmDiskTarget> => DatastoreUploadTarget.open(d);
