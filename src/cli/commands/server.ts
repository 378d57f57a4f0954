/**
 * `vmbkp server --config FILE`: the backup server (API, dashboard, schedules, metrics).
 * `vmbkp server user add|passwd|remove|list` and `vmbkp server token create|revoke|list`
 * manage its users and API tokens in its database, beside a running server or not.
 * Passwords come from --password-file FILE (- for stdin), never from an argument.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { InputError, UsageError, describeCause } from '../../errors.js';
import type { Db } from '../../server/db.js';
import { Output } from '../context.js';
import { table } from '../format.js';
import * as log from '../log.js';

interface GlobalConfig { config?: string; json?: boolean }

function serverConfigFile(cmd: Command): string {
  const file = cmd.optsWithGlobals<GlobalConfig>().config;
  if (!file) throw new UsageError('vmbkp server needs --config FILE: the server config (listen, stateDir, repositories, schedules)');
  return file;
}

type Auth = typeof import('../../server/auth.js');

/** Opens the server's database for one user/token command; the server modules load only then (lazy CLI start). */
async function withDb<T>(cmd: Command, fn: (db: Db, auth: Auth) => Promise<T> | T): Promise<T> {
  const [{ loadServerConfig }, { openDb }, auth] = await Promise.all([import('../../server/config.js'), import('../../server/db.js'), import('../../server/auth.js')]);
  const config = await loadServerConfig(serverConfigFile(cmd));
  const db = openDb(config.stateDir);
  try {
    return await fn(db, auth);
  } finally {
    db.close();
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('give the password with --password-file FILE, or on stdin (not on a terminal: it would echo)');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The first line of --password-file FILE, or of stdin with --password-file -. */
async function passwordFrom(opts: { passwordFile?: string }): Promise<string> {
  let text: string;
  if (opts.passwordFile === undefined) throw new UsageError('give the password with --password-file FILE (or --password-file - to read it from stdin); never as an argument');
  if (opts.passwordFile !== '-') {
    try {
      text = await readFile(opts.passwordFile, 'utf8');
    } catch (err) {
      throw new InputError(`reading the password file ${opts.passwordFile} failed: ${describeCause(err)}`, { cause: err });
    }
  } else {
    text = await readStdin();
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw new InputError(`the password ${opts.passwordFile !== '-' ? `file ${opts.passwordFile}` : 'on stdin'} is empty`);
  return line;
}

function serve(cmd: Command): Promise<void> {
  const file = serverConfigFile(cmd);
  return new Promise<void>((resolve, reject) => {
    const logger = { info: (m: string) => log.notice(m), warn: (m: string) => log.warn(m), error: (m: string) => log.warn(`error: ${m}`) };
    import('../../server/server.js').then(({ startServer }) => startServer(file, logger)).then((server) => {
      const how = server.certificateSource === 'generated' ? `self-signed, generated in ${server.certFile}` : server.certFile;
      process.stdout.write(`vmbkp server listening on ${server.url}\ncertificate SHA-256 fingerprint ${server.fingerprint} (${how})\n`);
      let stopping = false;
      const stop = (sig: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        log.notice(`${sig}: stopping (running jobs are cancelled and clean up)`);
        server.close().then(() => resolve(), reject);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    }, reject);
  });
}

export function register(program: Command): void {
  const server = program.command('server')
    .description('run the backup server (REST API, dashboard, scheduled recipes, /metrics) from --config FILE; or manage its users and tokens')
    .action(async (_opts: unknown, cmd: Command) => serve(cmd));

  const user = server.command('user').description('the server\'s users: add, passwd, remove, list');
  user.command('add')
    .description('add a user with a role: viewer (reads), operator (+ runs jobs and restores), admin (+ users, tokens, audit)')
    .argument('<name>')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .requiredOption('--password-file <file>', 'file holding the password (first line); - reads it from stdin')
    .action(async (name: string, opts: { role: string; passwordFile?: string; json?: boolean }, cmd: Command) => {
      const password = await passwordFrom(opts);
      await withDb(cmd, (db, auth) => auth.addUser(db, name, opts.role, password));
      new Output(!!opts.json).result({ user: name, role: opts.role }, `added user ${name} (${opts.role})`);
    });
  user.command('passwd')
    .description('set a user\'s password (ends their sessions)')
    .argument('<name>')
    .requiredOption('--password-file <file>', 'file holding the new password (first line); - reads it from stdin')
    .action(async (name: string, opts: { passwordFile?: string; json?: boolean }, cmd: Command) => {
      const password = await passwordFrom(opts);
      await withDb(cmd, (db, auth) => auth.setPassword(db, name, password));
      new Output(!!opts.json).result({ user: name }, `password of user ${name} changed`);
    });
  user.command('remove')
    .description('remove a user, their sessions and API tokens')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      await withDb(cmd, (db, auth) => auth.removeUser(db, name));
      new Output(!!opts.json).result({ user: name, removed: true }, `removed user ${name}`);
    });
  user.command('list')
    .description('list the users and their roles')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const users = await withDb(cmd, (db, auth) => auth.listUsers(db));
      new Output(!!opts.json).result(users, table(['user', 'role', 'created'], users.map((u) => [u.name, u.role, u.createdAt])));
    });

  const token = server.command('token').description('API tokens for scripts (Authorization: Bearer TOKEN): create, revoke, list');
  token.command('create')
    .description('create an API token for a user; the token is printed this once, only its hash is kept')
    .argument('<name>', 'what the token is for')
    .requiredOption('--user <user>', 'whose rights the token has')
    .action(async (name: string, opts: { user: string; json?: boolean }, cmd: Command) => {
      const t = await withDb(cmd, (db, auth) => auth.createToken(db, opts.user, name));
      new Output(!!opts.json).result({ id: t.id, token: t.token, user: opts.user, name }, `API token ${t.id} (${name}) for ${opts.user}; shown this once:\n${t.token}`);
    });
  token.command('revoke')
    .description('revoke an API token')
    .argument('<id>')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      await withDb(cmd, (db, auth) => auth.revokeToken(db, id));
      new Output(!!opts.json).result({ id, revoked: true }, `revoked API token ${id}`);
    });
  token.command('list')
    .description('list API tokens (never the tokens themselves)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const tokens = await withDb(cmd, (db, auth) => auth.listTokens(db));
      new Output(!!opts.json).result(tokens, table(['id', 'name', 'user', 'created', 'last used'], tokens.map((t) => [t.id, t.name, t.user, t.createdAt, t.lastUsedAt ?? '-'])));
    });
}
