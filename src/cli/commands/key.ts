/** vmbkp key list|add|remove|passwd|export: the passwords of an encrypted repository, and its recovery copy. */
import type { Command } from 'commander';
import type { KeyInfo } from '../../app/keys.js';
import { type GlobalOptions, Output, openRepository, repoPath } from '../context.js';
import { table } from '../format.js';
import { type NewPasswordOptions, kdfParams, newKeyPassword } from '../repo-password.js';

const KDF_MEMORY_HELP = 'memory scrypt uses to derive the key from the new password, a power of two (default 64; or set VMBKP_KDF_MEMORY)';
const NEW_PASSWORD_HELP = 'file holding the new password (first line); or set VMBKP_NEW_REPO_PASSWORD_FILE; else it is asked twice on the terminal';

function listText(location: string, keys: readonly KeyInfo[], shortIdLength: (ids: readonly string[]) => number): string {
  const length = shortIdLength(keys.map((k) => k.id));
  const rows = keys.map((k) => [k.current ? '*' : '', k.id.slice(0, length), k.label ?? '', k.created.replace('T', ' ').slice(0, 19), `${k.kdf.memoryMiB} MiB`]);
  const current = keys.some((k) => k.current) ? '\n* the key whose password opened the repository' : '';
  return `${keys.length} key${keys.length === 1 ? '' : 's'} of repository ${location}\n${table(['', 'id', 'label', 'created (UTC)', 'KDF memory'], rows)}${current}`;
}

export function register(program: Command): void {
  const key = program.command('key')
    .description('manage the passwords (keys) of an encrypted repository: list, add, remove, passwd, export');

  key.command('list')
    .description('list the keys: id, label, when created, the memory their key derivation takes; * marks the one your password opens')
    .action(async (opts: GlobalOptions) => {
      const { listRepositoryKeys, shortIdLength } = await import('../../app/keys.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const keys = await listRepositoryKeys(repo, (m) => out.warn(m));
      out.result({ repository: repo.location, keys }, listText(repo.location, keys, shortIdLength));
    });

  key.command('add')
    .description('add a key: another password that opens the repository (with --master-key-file, no present password is needed)')
    .option('--label <text>', 'a label for the new key, shown by key list')
    .option('--kdf-memory <MiB>', KDF_MEMORY_HELP)
    .option('--new-password-file <file>', NEW_PASSWORD_HELP)
    .option('--master-key-file <file>', 'open the repository with this recovery copy (written by vmbkp key export) instead of a password')
    .action(async (opts: GlobalOptions & NewPasswordOptions & { label?: string; kdfMemory?: string; masterKeyFile?: string }) => {
      const { addRepositoryKey, keyText, openWithRecoveryFile } = await import('../../app/keys.js');
      const out = new Output(!!opts.json);
      const kdf = await kdfParams(opts.kdfMemory);
      const password = newKeyPassword(opts, 'key add');
      const repo = opts.masterKeyFile !== undefined ? await openWithRecoveryFile(await repoPath(opts), opts.masterKeyFile) : await openRepository(opts);
      const added = await addRepositoryKey(repo, { password, kdf, label: opts.label });
      out.result({ repository: repo.location, added }, `added key ${keyText(added)} to repository ${repo.location}: its password opens the repository`);
    });

  key.command('remove')
    .description('remove a key (never the last one, nor the one your password opens)')
    .argument('<id>', 'the key\'s id, or a unique prefix of it (as key list shows)')
    .action(async (id: string, opts: GlobalOptions) => {
      const { keyText, removeRepositoryKey } = await import('../../app/keys.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const removed = await removeRepositoryKey(repo, id, (m) => out.warn(m));
      out.result({ repository: repo.location, removed }, `removed key ${keyText(removed)} from repository ${repo.location}: its password no longer opens it`);
    });

  key.command('passwd')
    .description('change the password you opened the repository with: a key for the new password replaces that key')
    .option('--kdf-memory <MiB>', KDF_MEMORY_HELP)
    .option('--new-password-file <file>', NEW_PASSWORD_HELP)
    .action(async (opts: GlobalOptions & NewPasswordOptions & { kdfMemory?: string }) => {
      const { changeRepositoryPassword, keyText } = await import('../../app/keys.js');
      const out = new Output(!!opts.json);
      const kdf = await kdfParams(opts.kdfMemory);
      const password = newKeyPassword(opts, 'key passwd');
      const repo = await openRepository(opts);
      const r = await changeRepositoryPassword(repo, { password, kdf }, (m) => out.warn(m));
      out.result({ repository: repo.location, ...r },
        `changed the password: key ${keyText(r.added)} replaces key ${keyText(r.removed)}; the old password no longer opens repository ${repo.location}`);
    });

  key.command('export')
    .description('write a recovery copy of the master key to a new file (mode 0600): it opens the repository without any password')
    .requiredOption('--to <file>', 'the file to create (an existing file is not overwritten)')
    .action(async (opts: GlobalOptions & { to: string }) => {
      const { exportRecoveryFile } = await import('../../app/keys.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      await exportRecoveryFile(repo, opts.to);
      out.warn(`whoever holds ${opts.to} can read every backup in ${repo.location} (and add keys to it) without a password: keep it offline and apart from the repository`);
      out.result({ repository: repo.location, file: opts.to },
        `wrote the master key of repository ${repo.location} to ${opts.to} (mode 0600); if every password is lost: vmbkp key add --master-key-file ${opts.to}`);
    });
}
