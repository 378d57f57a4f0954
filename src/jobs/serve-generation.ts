/**
 * Serves one disk of one generation as an NBD export until stopped, under a shared lock
 * (so prune and gc cannot remove what is being served). Read-only by default; writable
 * exports write to a temporary overlay that is discarded when the server stops: the
 * repository is never written.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GenerationExport } from '../engine/generation-export.js';
import { OverlayExport } from '../engine/overlay-export.js';
import { type ExportBackend, type ListenAddress, NbdServer, type ServerTls, exportUri } from '../nbd/server.js';
import { loadDiskIndex } from '../repository/disk-index.js';
import { RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { findDisk, resolveGeneration } from './resolve.js';

export interface ServeGenerationJob {
  readonly repo: Repository;
  readonly set: string;
  /** A generation number, or "latest". */
  readonly generation: string;
  readonly disk: string;
  readonly writable: boolean;
  /** Where to listen; by default a Unix socket in a new private temporary directory. */
  readonly listen?: ListenAddress;
  /** Require TLS (and, with verifyPeer, a client certificate). */
  readonly tls?: ServerTls;
  /** Workers that decompress and verify chunks (default: one per core, at most 8). */
  readonly workers?: number;
  readonly onWarning?: (message: string) => void;
}

export interface ServedExport {
  readonly uri: string;
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly size: number;
  readonly writable: boolean;
  /** Clients must use TLS; `clientCertificate` when they must also present a certificate. */
  readonly tls: false | { readonly clientCertificate: boolean };
}

export interface ServingGeneration {
  readonly export: ServedExport;
  /** The listening address as bound. */
  readonly address: ListenAddress;
  /** Plain bytes of the chunks read from the repository so far (zero chunks and cached ones cost nothing). */
  bytesRead(): number;
  /** Stops serving (requests in flight are answered first), drops the overlay, releases the lock. Idempotent. */
  stop(): Promise<void>;
}

export async function serveGeneration(job: ServeGenerationJob): Promise<ServingGeneration> {
  const lock = await RepositoryLock.acquire(job.repo, 'shared', `serve of ${job.set}`, job.onWarning);
  const undo: (() => Promise<void>)[] = [() => lock.release()];
  /** Undoes in reverse order; every step runs, the first failure is thrown after. */
  const unwind = async (): Promise<void> => {
    let failure: { err: unknown } | undefined;
    for (const u of undo.splice(0).reverse()) {
      try { await u(); } catch (err) { failure ??= { err }; }
    }
    if (failure) throw failure.err;
  };
  try {
    const manifest = await resolveGeneration(job.repo, job.set, job.generation);
    const record = findDisk(manifest, job.disk);
    const what = `set ${manifest.set} generation ${manifest.generation} disk ${record.name}`;
    await job.repo.loadIndex();
    const index = await loadDiskIndex(job.repo, record, `serving ${what}`);

    let privateDir: string | undefined;
    if (!job.listen || job.writable) {
      privateDir = await fs.mkdtemp(path.join(tmpdir(), 'vmbkp-serve-'));
      const dir = privateDir;
      undo.push(() => fs.rm(dir, { recursive: true, force: true }));
    }
    const workers = job.repo.acquirePool(job.workers);
    const pool = workers.pool;
    undo.push(() => workers.release());
    const generation = await GenerationExport.open({ repo: job.repo, index, what, pool });
    undo.push(() => generation.close());
    let backend: ExportBackend = generation;
    if (job.writable) {
      const overlay = await OverlayExport.create(backend, privateDir!);
      undo.push(() => overlay.close());
      backend = overlay;
    }
    const server = new NbdServer(backend, {
      name: record.name,
      description: `vmbkp: ${what}${job.writable ? ', writes go to a temporary overlay' : ', read-only'}`,
      ...(job.onWarning ? { onWarning: job.onWarning } : {}),
      ...(job.tls ? { tls: job.tls } : {}),
    });
    const address = await server.listen(job.listen ?? { transport: 'unix', path: path.join(privateDir!, 'nbd.sock') });
    undo.push(() => server.close());

    let stopping: Promise<void> | undefined;
    return {
      export: {
        uri: exportUri(address, record.name, !!job.tls), set: manifest.set, generation: manifest.generation, disk: record.name,
        size: record.size, writable: job.writable, tls: job.tls ? { clientCertificate: job.tls.verifyPeer } : false,
      },
      address,
      bytesRead: () => generation.bytesRead,
      stop: () => (stopping ??= unwind()),
    };
  } catch (err) {
    await unwind().catch(() => {}); // the first error is the one to report
    throw err;
  }
}
