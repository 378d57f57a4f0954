/** vmbkp serve: one disk of one generation as an NBD export, until SIGINT or SIGTERM. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { bytes } from '../format.js';

interface ServeOptions extends GlobalOptions {
  set: string;
  generation: string;
  disk: string;
  listen?: string;
  writable?: boolean;
  tlsCertificates?: string;
  tlsVerifyPeer?: boolean;
}

export function register(program: Command): void {
  program.command('serve')
    .description('serve a disk of a generation as an NBD export (read-only; --writable writes to a temporary overlay) until SIGINT or SIGTERM')
    .requiredOption('--set <name>', 'backup set')
    .option('--generation <g>', 'a number, latest, latest~N, a date or date-time (newest at or before it), or an id prefix', 'latest')
    .requiredOption('--disk <disk>', 'disk to serve: its name, or a VM disk\'s key (2000), label ("Hard disk 1") or bus position (scsi0:0)')
    .option('--listen <address>', 'unix:PATH or tcp:HOST:PORT (default: a Unix socket in a new private temporary directory)')
    .option('--writable', 'accept writes, into a temporary overlay discarded when the server stops (the repository is never written)')
    .option('--tls-certificates <dir>', 'require TLS, with DIR/server-cert.pem and DIR/server-key.pem (the layout nbdkit and qemu-nbd use)')
    .option('--tls-verify-peer', 'also require a client certificate signed by DIR/ca-cert.pem')
    .action(async (opts: ServeOptions) => {
      const { loadServerTls, parseListenAddress, serveGeneration } = await import('../../app/serve.js');
      const out = new Output(!!opts.json);
      // The first SIGINT/SIGTERM stops the server: requests in flight are answered, the
      // overlay is dropped, the lock released, and the exit code is 0. A signal during
      // set-up stops it as soon as it is up. A second signal does not wait.
      let signalled = false;
      let wake: (() => void) | undefined;
      const onSignal = () => {
        if (signalled) {
          process.stderr.write('vmbkp: error: signalled again while stopping: exiting without waiting (the next command removes the lock as stale)\n');
          process.exit(ExitCode.FAILURE);
        }
        signalled = true;
        wake?.();
      };
      process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
      try {
        const listen = opts.listen === undefined ? undefined : parseListenAddress(opts.listen);
        if (opts.tlsVerifyPeer && !opts.tlsCertificates) throw new UsageError('--tls-verify-peer needs --tls-certificates DIR');
        const tls = opts.tlsCertificates ? await loadServerTls(opts.tlsCertificates, !!opts.tlsVerifyPeer) : undefined;
        const repo = await openRepository(opts);
        const serving = await serveGeneration({
          repo, set: opts.set, generation: opts.generation, disk: opts.disk, writable: !!opts.writable,
          ...(listen ? { listen } : {}),
          ...(tls ? { tls } : {}),
          onWarning: (m) => out.warn(m),
        });
        try {
          if (!signalled) {
            const e = serving.export;
            if (out.json) process.stdout.write(JSON.stringify(e) + '\n');
            else process.stdout.write(`serving set ${e.set} generation ${e.generation} disk ${e.disk} (${bytes(e.size)}) `
              + `${e.writable ? 'writable (writes go to a temporary overlay, discarded at exit)' : 'read-only'}`
              + `${e.tls ? (e.tls.clientCertificate ? ', TLS with client certificates,' : ', TLS,') : ''} at ${e.uri}\n`);
            await new Promise<void>((resolve) => { wake = resolve; });
          }
        } finally {
          await serving.stop();
        }
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      }
    });
}
