/**
 * LocalBackend: a repository in a local directory. Atomic write-once puts go through a
 * temporary file in `tmp/`, fsync, then link(2) to the final name (link fails if the
 * name exists, which is what write-once needs), then an fsync of the directory.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AlreadyExistsError, IoError, NotFoundError, describeCause } from '../errors.js';
import { type ProcessIdentity, ownerState, thisProcess } from '../process-identity.js';
import { type ByteRange, type ObjectStat, type StorageBackend, checkObjectName } from './backend.js';

const TMP = 'tmp';
/** Random bytes in a temporary name (12 hex digits): concurrent puts of one name by one process never meet. */
const TMP_RANDOM_BYTES = 6;

export class LocalBackend implements StorageBackend {
  readonly location: string;
  private readonly root: string;
  private readonly knownDirs = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  private full(name: string): string {
    checkObjectName(name);
    return path.join(this.root, ...name.split('/'));
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const final = this.full(name);
    const tmpDir = path.join(this.root, TMP);
    const tmp = path.join(tmpDir, `${uploader()}.${randomBytes(TMP_RANDOM_BYTES).toString('hex')}.${name.replaceAll('/', '_')}`);
    try {
      await this.ensureDir(tmpDir);
      await this.ensureDir(path.dirname(final));
      const fh = await fs.open(tmp, 'wx', 0o600);
      try {
        const parts = data instanceof Uint8Array ? [data] : data;
        await fh.writev(parts as Uint8Array[]);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await fs.link(tmp, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new AlreadyExistsError(`storing ${name} in ${this.location} failed: it exists already`, { cause: err });
        }
        throw err;
      }
      await syncDir(path.dirname(final));
    } catch (err) {
      if (err instanceof AlreadyExistsError) throw err;
      throw new IoError(`storing ${name} in ${this.location} failed: ${describeCause(err)}`, { cause: err });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async get(name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    const file = this.full(name);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`reading ${name} from ${this.location} failed: no such object`, { cause: err });
      }
      throw new IoError(`reading ${name} from ${this.location} failed: ${describeCause(err)}`, { cause: err });
    }
    try {
      if (!range) return await fh.readFile();
      const buf = into ? into.subarray(0, range.length) : Buffer.allocUnsafe(range.length);
      let done = 0;
      while (done < range.length) {
        const { bytesRead } = await fh.read(buf, done, range.length - done, range.offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done !== range.length) {
        throw new IoError(`reading ${name} from ${this.location} at offset ${range.offset} failed: `
          + `object ends after ${range.offset + done} bytes, ${range.length} were wanted`);
      }
      return buf;
    } catch (err) {
      if (err instanceof IoError) throw err;
      throw new IoError(`reading ${name} from ${this.location} failed: ${describeCause(err)}`, { cause: err });
    } finally {
      await fh.close();
    }
  }

  async stat(name: string): Promise<ObjectStat | undefined> {
    try {
      const st = await fs.stat(this.full(name));
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new IoError(`looking up ${name} in ${this.location} failed: ${describeCause(err)}`, { cause: err });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const dir = prefix.replace(/\/+$/, '');
    if (dir !== '') checkObjectName(dir);
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(path.join(this.root, ...rel.split('/').filter(Boolean)), { withFileTypes: true });
      } catch (err) {
        // No such folder, or the prefix names an object: nothing is under it.
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        throw new IoError(`listing ${prefix || '/'} in ${this.location} failed: ${describeCause(err)}`, { cause: err });
      }
      for (const e of entries) {
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (rel === '' && e.name === TMP) continue;
        if (e.isDirectory()) await walk(name);
        else if (e.isFile()) out.push(name);
      }
    };
    await walk(dir);
    return out;
  }

  async remove(name: string): Promise<void> {
    try {
      await fs.rm(this.full(name), { force: true });
    } catch (err) {
      throw new IoError(`removing ${name} from ${this.location} failed: ${describeCause(err)}`, { cause: err });
    }
  }

  async sweep(olderThanMs: number): Promise<number> {
    const dir = path.join(this.root, TMP);
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw new IoError(`listing interrupted uploads in ${this.location} failed: ${describeCause(err)}`, { cause: err });
    }
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    for (const n of names) {
      const st = await fs.stat(path.join(dir, n)).catch(() => undefined);
      if (st && (st.mtimeMs <= cutoff || ownerState(uploaderOf(n)) === 'dead')) {
        await fs.rm(path.join(dir, n), { force: true });
        removed++;
      }
    }
    return removed;
  }
}

/**
 * The start of a temporary name: who writes it, so sweep() can tell an abandoned upload
 * from one in progress. `<pid>.t<start ticks>`, or `<pid>` where the start time is
 * unknown (and in names written before it was recorded). The `t` keeps the two apart:
 * the random part that follows is hex. No host: the directory is taken as this host's.
 */
function uploader(): string {
  const me = thisProcess();
  return me.start !== undefined ? `${me.pid}.t${me.start}` : String(me.pid);
}

function uploaderOf(tmpName: string): ProcessIdentity {
  const [pid, second] = tmpName.split('.');
  const start = second !== undefined && /^t\d+$/.test(second) ? second.slice(1) : undefined;
  // A name that is not ours reads as pid NaN: dead, so it is swept.
  return { host: thisProcess().host, pid: /^\d+$/.test(pid ?? '') ? Number(pid) : Number.NaN, ...(start !== undefined ? { start } : {}) };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
