/**
 * A restore target that is a new qcow2 image: `qemu-img create` makes it, `qemu-nbd`
 * serves it on a private Unix socket, and the NBD client writes it. The image reads as
 * zeros where nothing was written, so zero chunks are skipped and the file stays as
 * small as the data (qemu-img, not vmbkp, owns the qcow2 format).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { AlreadyExistsError, InputError, IoError, describeCause } from '../errors.js';
import { HelperProcess } from './helper-process.js';
import { NbdTarget } from './nbd.js';
import type { DiskTarget } from './types.js';

const execFileP = promisify(execFile);
const INSTALL = 'apt install qemu-utils';

async function createImage(file: string, size: number): Promise<void> {
  try {
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new InputError(`qemu-img is not installed, which qcow2 restores need: ${INSTALL}`, { cause: err });
    throw new IoError(`creating qcow2 image ${file} failed: ${(e.stderr ?? '').trim() || describeCause(err)}`, { cause: err });
  }
}

/** Starts qemu-nbd on `file` and waits until it accepts connections. */
function serve(file: string, socket: string): Promise<HelperProcess> {
  return HelperProcess.start({
    command: 'qemu-nbd',
    // writeback: qemu-nbd flushes when the client sends FLUSH, which close() does.
    // persistent: the probe connection that sees it ready must not end the server.
    args: ['--format=qcow2', '--cache=writeback', '--persistent', `--socket=${socket}`, file],
    socket,
    what: `qemu-nbd for ${file}`,
    notInstalled: `qemu-nbd is not installed, which qcow2 restores need: ${INSTALL}`,
  });
}

export class Qcow2Target implements DiskTarget {
  readonly zeroed = true;
  readonly description: string;

  private constructor(private readonly nbd: NbdTarget, private readonly server: HelperProcess,
    private readonly dir: string, private readonly file: string, readonly size: number) {
    this.description = `qcow2:${file}`;
  }

  /** Creates `file` (refused when it exists, unless `overwrite`) as a qcow2 image of `size` bytes. */
  static async create(file: string, size: number, overwrite: boolean): Promise<Qcow2Target> {
    try {
      await fs.lstat(file);
      if (!overwrite) throw new AlreadyExistsError(`restoring to ${file} refused: the file exists (pass --overwrite to replace it)`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await createImage(file, size);
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'vmbkp-qcow2-'));
    const socket = path.join(dir, 'nbd.sock');
    let server: HelperProcess | undefined;
    try {
      server = await serve(file, socket);
      const nbd = await NbdTarget.open(`nbd+unix:///?socket=${encodeURIComponent(socket)}`, size);
      return new Qcow2Target(nbd, server, dir, file, size);
    } catch (err) {
      await server?.stop();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(file, { force: true });
      throw err;
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.nbd.write(offset, data);
  }

  zero(offset: number, length: number): Promise<void> {
    return this.nbd.zero(offset, length);
  }

  flush(): Promise<void> {
    return this.nbd.flush();
  }

  async close(): Promise<void> {
    try {
      await this.nbd.flush();
      await this.nbd.close();
    } finally {
      await this.server.stop();
      await fs.rm(this.dir, { recursive: true, force: true });
    }
  }

  async discard(): Promise<void> {
    await this.close().catch(() => {});
    await fs.rm(this.file, { force: true });
  }
}
