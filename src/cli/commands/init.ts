import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { initRepository } from '../../app/repository.js';
import { type GlobalOptions, Output, repoPath } from '../context.js';
import { bytes, parseSize } from '../format.js';
import { initPassword, kdfParams } from '../repo-password.js';

const ENCRYPTIONS = ['aes-256-gcm', 'none'] as const;

export function register(program: Command): void {
  program.command('init')
    .description('create a new repository')
    .option('--chunk-size <size>', 'chunk size, a power of two from 4K to 16M (default 256K)')
    .option('--encryption <cipher>', 'aes-256-gcm (the default: needs a password) or none (a plaintext repository, readable by whoever reads its files)')
    .option('--kdf-memory <MiB>', 'memory scrypt uses to derive the key from the password, a power of two (default 64; or set VMBKP_KDF_MEMORY)')
    .option('--key-label <text>', 'a label for the first key, shown by key list')
    .action(async (opts: GlobalOptions & { chunkSize?: string; encryption?: string; kdfMemory?: string; keyLabel?: string }) => {
      const out = new Output(!!opts.json);
      let chunkSize: number | undefined;
      if (opts.chunkSize !== undefined) {
        chunkSize = parseSize(opts.chunkSize);
        if (chunkSize === undefined) throw new UsageError(`--chunk-size ${JSON.stringify(opts.chunkSize)} is not a size (e.g. 256K)`);
      }
      const encryption = opts.encryption ?? 'aes-256-gcm';
      if (!(ENCRYPTIONS as readonly string[]).includes(encryption)) throw new UsageError(`--encryption ${JSON.stringify(encryption)} is not one of: ${ENCRYPTIONS.join(', ')}`);
      const path = repoPath(opts);
      const kdf = kdfParams(opts.kdfMemory);
      const password = encryption === 'none' ? undefined : await initPassword(opts)();
      const repo = await initRepository(path, {
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(password !== undefined ? { encryption: { password, ...(kdf ? { kdf } : {}), ...(opts.keyLabel !== undefined ? { label: opts.keyLabel } : {}) } } : {}),
      });
      out.result({ repository: repo.location, id: repo.config.id, chunkSize: repo.config.chunkSize, version: repo.config.version, encryption: repo.encrypted ? 'aes-256-gcm' : 'none' },
        `created ${repo.encrypted ? 'encrypted' : 'plaintext'} repository ${repo.location} (chunk size ${bytes(repo.config.chunkSize)})`
        + (repo.encrypted ? '\nkeep its password safe: without it (or a copy from vmbkp key export) the backups cannot be read' : ''));
    });
}
