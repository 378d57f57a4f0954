import type { Command } from 'commander';
import { restoreDiskJob } from '../../jobs/restore-disk-job.js';
import { openTarget } from '../../sources/open.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes, duration, rate } from '../format.js';
import { progressSink } from '../progress.js';

interface RestoreOptions extends GlobalOptions {
  set: string;
  generation: string;
  disk: string;
  to: string;
  overwrite?: boolean;
}

export function register(program: Command): void {
  program.command('restore')
    .description('restore a disk of a generation to a sparse raw image')
    .requiredOption('--set <name>', 'backup set')
    .option('--generation <n>', 'generation number, or latest', 'latest')
    .requiredOption('--disk <name>', 'disk to restore')
    .requiredOption('--to <uri>', 'target, e.g. file:/restore/web01.img')
    .option('--overwrite', 'replace an existing target file')
    .action(async (opts: RestoreOptions) => {
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const progress = progressSink(out.json);
      const result = await restoreDiskJob({
        repo, set: opts.set, generation: opts.generation, disk: opts.disk,
        openTarget: async (size) => {
          const t = await openTarget(opts.to, size, !!opts.overwrite);
          progress.start(`restore ${opts.disk}`, size);
          return t;
        },
        onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
        onWarning: (m) => out.warn(m),
      });
      progress.stop();
      out.result(result, `restored set ${result.set} generation ${result.generation} disk ${result.disk} to ${result.target}: `
        + `${bytes(result.size)} disk, ${bytes(result.bytesWritten)} written in ${duration(result.durationMs)} (${rate(result.bytesWritten, result.durationMs)}), every chunk verified`);
    });
}
