/**
 * Starting the server: config, database, the jobs left running by the last process marked
 * interrupted, missed schedules recorded, the certificate, the HTTPS listener, then the
 * schedules. `close` stops the schedules, cancels running jobs (they clean up as a failed
 * run does) and closes the listener and the database.
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { IoError, describeCause } from '../errors.js';
import { webhookAlerts } from './alerts.js';
import { buildApp } from './app.js';
import { loadServerConfig } from './config.js';
import type { Logger, ServerContext } from './context.js';
import { openDb } from './db.js';
import { registerJobKinds } from './job-kinds.js';
import { JobRunner } from './jobs.js';
import { RepositoryRegistry } from './repositories.js';
import { sampleRepositoryUsage } from './usage.js';
import { Scheduler } from './scheduler.js';
import { serverCertificate } from './tls.js';

export interface RunningServer {
  readonly url: string;
  readonly fingerprint: string;
  readonly certificateSource: 'config' | 'generated';
  readonly certFile: string;
  readonly interrupted: number;
  readonly ctx: ServerContext;
  close(): Promise<void>;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export async function startServer(configFile: string, log: Logger): Promise<RunningServer> {
  const config = await loadServerConfig(configFile);
  const db = openDb(config.stateDir);
  const repositories = new RepositoryRegistry(config.repositories, configFile);
  const jobs = new JobRunner(db, (m) => log.error(m));
  const scheduler = new Scheduler(db, jobs, config.schedules, log);
  const ctx: ServerContext = { config, configFile, db, repositories, jobs, scheduler, log };
  registerJobKinds(ctx);

  const alert = webhookAlerts(config.alerts.webhook, log);
  jobs.onEnd(alert);
  jobs.onEnd((job) => sampleRepositoryUsage(ctx, job));
  jobs.onEnd((job) => log.info(`job ${job.id} (${job.kind} ${job.name}) ${job.status}${job.error ? `: ${job.error.message}` : ''}`));

  const cut = db.prepare("SELECT id FROM jobs WHERE status IN ('running', 'queued')").all() as { id: number }[];
  const interrupted = jobs.markInterrupted();
  for (const { id } of cut) {
    const s = jobs.summary(id);
    if (s) void alert(s);
  }
  if (interrupted > 0) log.warn(`${interrupted} job${interrupted === 1 ? ' was' : 's were'} still running when the server last stopped: marked interrupted`);
  scheduler.detectMissed();

  const cert = await serverCertificate(config.tls, config.stateDir);
  const app = buildApp(ctx);
  const server = createAdaptorServer({ fetch: app.fetch, createServer, serverOptions: { cert: cert.cert, key: cert.key } });
  const { host, port } = splitListen(config.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new IoError(`listening on ${config.listen} failed: ${describeCause(err)}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  scheduler.start();
  return {
    url: `https://${shown}:${addr.port}`, fingerprint: cert.fingerprint, certificateSource: cert.source, certFile: cert.certFile, interrupted, ctx,
    close: async () => {
      scheduler.stop();
      await jobs.stopAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      db.close();
    },
  };
}
