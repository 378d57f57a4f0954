/**
 * `file:` disks: raw images in local files, read as a DiskSource and written as a sparse
 * DiskTarget. Allocation comes from SEEK_DATA/SEEK_HOLE (file-extents.ts), so a backup reads
 * only the extents that hold data; without the native addon the whole file counts as data and
 * the engine finds the holes zero after reading them.
 */
import { constants, promises as fs, writeSync } from 'node:fs';
import { AlreadyExistsError, InputError, IoError, NotFoundError, describeCause } from '../errors.js';
import { dataExtents, holeDetectionWarning } from './file-extents.js';
import type { DiskSource, DiskTarget, Extent, ChangesUnknown } from './types.js';

export class FileSource implements DiskSource {
  readonly description: string;
  readonly warning: string | undefined = holeDetectionWarning();
  readonly local = true;

  private constructor(private readonly fh: fs.FileHandle, readonly path: string, readonly size: number) {
    this.description = `file:${path}`;
  }

  static async open(path: string): Promise<FileSource> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(path, constants.O_RDONLY);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NotFoundError(`opening disk file ${path} failed: no such file`, { cause: err });
      throw new IoError(`opening disk file ${path} failed: ${describeCause(err)}`, { cause: err });
    }
    const st = await fh.stat();
    if (st.isBlockDevice()) {
      // Block devices report size 0 from stat; seek-to-end is not exposed, so refuse plainly.
      await fh.close();
      throw new InputError(`disk ${path} is a block device; back it up through NBD (qemu-nbd or nbdkit) instead`);
    }
    if (!st.isFile()) {
      await fh.close();
      throw new InputError(`disk ${path} is not a regular file`);
    }
    return new FileSource(fh, path, st.size);
  }

  async allocated(offset: number, length: number): Promise<Extent[]> {
    if (length <= 0) return [];
    let found: Extent[] | undefined;
    try {
      found = dataExtents(this.fh.fd, offset, length);
    } catch (err) {
      throw new IoError(`finding the data extents of ${this.description} failed: ${describeCause(err)}`, { cause: err });
    }
    return found ?? [{ start: offset, length }];
  }

  async changedSince(): Promise<Extent[] | ChangesUnknown> {
    return { unknown: `${this.description} has no change tracking` };
  }

  async changeToken(): Promise<string | undefined> {
    return undefined;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file after ${offset + done} bytes`);
        done += bytesRead;
      }
    } catch (err) {
      throw new IoError(`reading ${this.description} at offset ${offset + done} failed: ${describeCause(err)}`, { cause: err });
    }
    return buf;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export class FileTarget implements DiskTarget {
  readonly description: string;
  readonly zeroed = true;

  private constructor(private readonly fh: fs.FileHandle, readonly path: string, readonly size: number) {
    this.description = `file:${path}`;
  }

  /** Creates a new sparse file of `size` bytes. An existing file is replaced only with `overwrite`. */
  static async create(path: string, size: number, overwrite: boolean): Promise<FileTarget> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(path, overwrite ? 'w' : 'wx', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new AlreadyExistsError(`restoring to ${path} refused: the file exists (pass --overwrite to replace it)`, { cause: err });
      throw new IoError(`creating ${path} failed: ${describeCause(err)}`, { cause: err });
    }
    try {
      await fh.truncate(size);
    } catch (err) {
      await fh.close();
      throw new IoError(`sizing ${path} to ${size} bytes failed: ${describeCause(err)}`, { cause: err });
    }
    return new FileTarget(fh, path, size);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    // A file would grow past the disk; every other target refuses such a write.
    if (offset < 0 || offset + data.length > this.size) {
      throw new IoError(`writing ${this.description}: ${data.length} bytes at offset ${offset} go past the end of the disk (${this.size} bytes)`);
    }
    let done = 0;
    try {
      // Synchronous: a buffered write is a memory copy, cheaper than a thread-pool round trip,
      // and the engine writes one batch at a time anyway.
      while (done < data.length) done += writeSync(this.fh.fd, data, done, data.length - done, offset + done);
    } catch (err) {
      throw new IoError(`writing ${this.description} at offset ${offset + done} failed: ${describeCause(err)}`, { cause: err });
    }
  }

  async zero(offset: number, length: number): Promise<void> {
    await this.write(offset, Buffer.alloc(length));
  }

  async flush(): Promise<void> {
    try {
      await this.fh.sync();
    } catch (err) {
      throw new IoError(`flushing ${this.description} failed: ${describeCause(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async discard(): Promise<void> {
    await this.fh.close().catch(() => {});
    await fs.rm(this.path, { force: true });
  }
}
