/**
 * The server's NBD exports. Each export is also a job of kind `export` that lasts as long
 * as it serves: the job history then says who exported what and for how long, and stopping
 * the server (which stops every job) stops every export and releases its repository lock.
 */
import { ExportRegistry } from '../app/exports.js';
import { InputError } from '../errors.js';
import type { ServerContext } from './context.js';
import type { JobKind } from './jobs.js';

const registries = new WeakMap<ServerContext, ExportRegistry>();

export function exportsOf(ctx: ServerContext): ExportRegistry {
  let r = registries.get(ctx);
  if (!r) {
    r = new ExportRegistry();
    registries.set(ctx, r);
  }
  return r;
}

export function exportJobKind(ctx: ServerContext): JobKind {
  const exports = exportsOf(ctx);
  return {
    kind: 'export',
    parse(body) {
      const id = body['exportId'];
      // Started by POST /exports only: the export must be listening before its job exists.
      if (typeof id !== 'string' || !exports.has(id)) throw new InputError('an export is started with POST /api/v1/exports, not as a job');
      return { exportId: id, repository: body['repository'], set: body['set'], generation: body['generation'], disk: body['disk'], uri: body['uri'] };
    },
    describe: (p) => ({
      name: `export ${String(p['set'])} generation ${String(p['generation'])} disk ${String(p['disk'])} at ${String(p['uri'])}`,
      repository: String(p['repository']),
    }),
    async run(job) {
      const id = String(job.params['exportId']);
      const aborted = new Promise<void>((resolve) => {
        if (job.signal.aborted) resolve();
        job.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await Promise.race([exports.whenStopped(id), aborted]);
      // Cancelled (or the server stopping): stop it here; stopped through DELETE /exports: already done.
      if (exports.has(id)) await exports.stop(id);
      job.log('info', `export ${id} stopped`);
      return { status: 'succeeded' };
    },
  };
}
