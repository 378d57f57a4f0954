import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { initRepository } from '../../app/repository.js';
import { type GlobalOptions, Output, repoPath } from '../context.js';
import { bytes, parseSize } from '../format.js';

export function register(program: Command): void {
  program.command('init')
    .description('create a new repository')
    .option('--chunk-size <size>', 'chunk size, a power of two from 4K to 16M (default 256K)')
    .action(async (opts: GlobalOptions & { chunkSize?: string }) => {
      const out = new Output(!!opts.json);
      let chunkSize: number | undefined;
      if (opts.chunkSize !== undefined) {
        chunkSize = parseSize(opts.chunkSize);
        if (chunkSize === undefined) throw new UsageError(`--chunk-size ${JSON.stringify(opts.chunkSize)} is not a size (e.g. 256K)`);
      }
      const path = repoPath(opts);
      const repo = await initRepository(path, chunkSize);
      out.result({ repository: repo.location, id: repo.config.id, chunkSize: repo.config.chunkSize, version: repo.config.version },
        `created repository ${repo.location} (chunk size ${bytes(repo.config.chunkSize)})`);
    });
}
