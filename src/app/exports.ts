/**
 * NBD exports a long-running process keeps: each serves one disk of one generation (as
 * `vmbkp serve` does, read-only, under a shared lock) until stopped through the API or the
 * process ends. Unix sockets live in a private temporary directory; TCP only on 127.0.0.1
 * (the export has no authentication of its own: the API's roles decide who starts one).
 */
import { randomUUID } from 'node:crypto';
import { NotFoundError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import { type ServingGeneration, serveGeneration } from '../jobs/serve-generation.js';

export interface ExportRequest {
  readonly repository: string;
  readonly repo: Repository;
  readonly set: string;
  readonly generation: string;
  readonly disk: string;
  /** unix (default): a socket in a new private directory; tcp: 127.0.0.1 on a free port. */
  readonly listen?: 'unix' | 'tcp';
  readonly user: string | null;
  readonly onWarning?: (message: string) => void;
}

export interface ExportInfo {
  readonly id: string;
  readonly uri: string;
  readonly repository: string;
  readonly set: string;
  readonly generation: number;
  readonly disk: string;
  readonly size: number;
  readonly startedAt: string;
  readonly user: string | null;
  /** Plain bytes read from the repository for clients so far. */
  readonly bytesRead: number;
}

interface Entry {
  readonly info: Omit<ExportInfo, 'bytesRead'>;
  readonly serving: ServingGeneration;
  readonly stopped: Promise<void>;
  readonly markStopped: () => void;
}

export class ExportRegistry {
  readonly #entries = new Map<string, Entry>();

  async start(req: ExportRequest): Promise<ExportInfo> {
    const serving = await serveGeneration({
      repo: req.repo, set: req.set, generation: req.generation, disk: req.disk, writable: false,
      ...(req.listen === 'tcp' ? { listen: { transport: 'tcp', host: '127.0.0.1', port: 0 } } : {}),
      ...(req.onWarning ? { onWarning: req.onWarning } : {}),
    });
    const e = serving.export;
    const info = {
      id: randomUUID(), uri: e.uri, repository: req.repository, set: e.set, generation: e.generation, disk: e.disk, size: e.size,
      startedAt: new Date().toISOString(), user: req.user,
    };
    let markStopped = () => {};
    const stopped = new Promise<void>((resolve) => { markStopped = resolve; });
    this.#entries.set(info.id, { info, serving, stopped, markStopped });
    return { ...info, bytesRead: 0 };
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** Resolves once the export is stopped (at once when there is no such export). */
  whenStopped(id: string): Promise<void> {
    return this.#entries.get(id)?.stopped ?? Promise.resolve();
  }

  list(): ExportInfo[] {
    return [...this.#entries.values()].map((e) => ({ ...e.info, bytesRead: e.serving.bytesRead() }));
  }

  /** Stops one export (requests in flight are answered first) and releases its lock. */
  async stop(id: string): Promise<ExportInfo> {
    const e = this.#entries.get(id);
    if (!e) throw new NotFoundError(`export ${id} does not exist (it was stopped, or the server restarted)`);
    this.#entries.delete(id);
    const info = { ...e.info, bytesRead: e.serving.bytesRead() };
    try {
      await e.serving.stop();
    } finally {
      e.markStopped();
    }
    return info;
  }

  /** Every export stopped: at server shutdown. */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.#entries.keys()].map((id) => this.stop(id)));
  }
}
