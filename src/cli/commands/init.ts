import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Repository } from '../../repository/repository.js';
import type { ObjectLockPolicy } from '../../storage/backend.js';
import { type FromRepoOptions, type GlobalOptions, Output, openSourceRepository, repoPasswordSource, repoPath, wholeNumber } from '../context.js';
import { bytes, parseSize } from '../format.js';
import { initPassword, kdfParams } from '../repo-password.js';

const ENCRYPTIONS = ['aes-256-gcm', 'none'] as const;

interface InitOptions extends GlobalOptions, FromRepoOptions {
  chunkSize?: string;
  encryption?: string;
  kdfMemory?: string;
  keyLabel?: string;
  lockDays?: string;
  lockMode?: string;
}

/** What a repository made with --from-repo shares with its source, for the result. */
function sharing(repo: Repository, from: Repository): { sharesKey: boolean; note: string } {
  if (repo.encrypted && from.encrypted) {
    return { sharesKey: true, note: `it shares the master key of ${from.location}: copies between them read and send only what the destination lacks; whoever can open either reads both` };
  }
  if (!repo.encrypted && !from.encrypted) {
    return { sharesKey: false, note: `both are plaintext: copies between them read and send only what the destination lacks` };
  }
  return { sharesKey: false, note: `one is encrypted and one is not: chunk ids differ, so a copy reads every chunk that changed since the previous generation it copied` };
}

export function register(program: Command): void {
  program.command('init')
    .description('create a new repository')
    .option('--chunk-size <size>', 'chunk size, a power of two from 4K to 16M (default 256K)')
    .option('--encryption <cipher>', 'aes-256-gcm (the default: needs a password) or none (a plaintext repository, readable by whoever reads its files)')
    .option('--kdf-memory <MiB>', 'memory scrypt uses to derive the key from the password, a power of two (default 64; or set VMBKP_KDF_MEMORY)')
    .option('--key-label <text>', 'a label for the first key, shown by key list')
    .option('--lock-days <days>', 'S3 only: lock every object written for this many days (S3 Object Lock): nobody can delete a backup sooner')
    .option('--lock-mode <mode>', 'with --lock-days: compliance (the default: nobody can lift it) or governance (users with s3:BypassGovernanceRetention can)')
    .option('--from-repo <repo>', "a repository (directory or s3:URL) to copy from later (vmbkp copy): take its chunk size and, both being encrypted, its master key (wrapped with this repository's password)")
    .option('--from-repo-password-file <file>', 'file holding its password (first line); or set VMBKP_FROM_REPO_PASSWORD_FILE or VMBKP_FROM_REPO_PASSWORD_COMMAND')
    .action(async (opts: InitOptions) => {
      const { initRepository } = await import('../../app/repository.js');
      const out = new Output(!!opts.json);
      let chunkSize: number | undefined;
      if (opts.chunkSize !== undefined) {
        if (opts.fromRepo !== undefined) throw new UsageError('--chunk-size and --from-repo exclude each other: the new repository takes the chunk size of --from-repo');
        chunkSize = parseSize(opts.chunkSize);
        if (chunkSize === undefined) throw new UsageError(`--chunk-size ${JSON.stringify(opts.chunkSize)} is not a size (e.g. 256K)`);
      }
      const encryption = opts.encryption ?? 'aes-256-gcm';
      if (!(ENCRYPTIONS as readonly string[]).includes(encryption)) throw new UsageError(`--encryption ${JSON.stringify(encryption)} is not one of: ${ENCRYPTIONS.join(', ')}`);
      const objectLock = lockPolicy(opts.lockDays, opts.lockMode);
      const path = await repoPath(opts);
      const kdf = await kdfParams(opts.kdfMemory);
      // The source first: a wrong password or location fails before a new password is asked.
      const from = opts.fromRepo !== undefined ? await openSourceRepository(opts) : undefined;
      if (from) chunkSize = from.config.chunkSize;
      const password = encryption === 'none' ? undefined : await initPassword(await repoPasswordSource(opts))();
      const repo = await initRepository(path, {
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(objectLock ? { objectLock } : {}),
        ...(password !== undefined ? {
          encryption: {
            password, ...(kdf ? { kdf } : {}), ...(opts.keyLabel !== undefined ? { label: opts.keyLabel } : {}),
            ...(from?.encrypted ? { shareKeyOf: from } : {}),
          },
        } : {}),
      });
      const shared = from ? sharing(repo, from) : undefined;
      out.result({
        repository: repo.location, id: repo.config.id, chunkSize: repo.config.chunkSize, version: repo.config.version, encryption: repo.encrypted ? 'aes-256-gcm' : 'none',
        ...(objectLock ? { objectLock } : {}),
        ...(from && shared ? { from: { repository: from.location, sharesKey: shared.sharesKey } } : {}),
      }, `created ${repo.encrypted ? 'encrypted' : 'plaintext'} repository ${repo.location} (chunk size ${bytes(repo.config.chunkSize)})`
        + (objectLock ? `\nevery object but locks is locked for ${objectLock.days} days (${objectLock.mode} mode)` : '')
        + (shared ? `\n${shared.note}` : '')
        + (repo.encrypted ? '\nkeep its password safe: without it (or a copy from vmbkp key export) the backups cannot be read' : ''));
    });
}

function lockPolicy(days: string | undefined, mode: string | undefined): ObjectLockPolicy | undefined {
  if (days === undefined) {
    if (mode !== undefined) throw new UsageError('--lock-mode needs --lock-days');
    return undefined;
  }
  const n = wholeNumber(days, '--lock-days');
  if (n < 1) throw new UsageError('--lock-days must be at least 1');
  const m = mode ?? 'compliance';
  if (m !== 'compliance' && m !== 'governance') throw new UsageError(`--lock-mode ${JSON.stringify(m)} is not one of: compliance, governance`);
  return { mode: m, days: n };
}
