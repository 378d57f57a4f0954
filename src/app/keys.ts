/**
 * The keys of an encrypted repository as `vmbkp key` manages them: list, add (with a
 * password, or after opening with a recovery copy of the master key), remove, change a
 * password, export the recovery copy. Removing takes the exclusive lock and never leaves
 * the repository without a key, nor removes the key this process opened it with.
 * Nothing here returns or logs key material.
 */
import { promises as fs } from 'node:fs';
import { AlreadyExistsError, InputError, IoError, UsageError, describeCause, withNote } from '../errors.js';
import { readConfig } from '../repository/config.js';
import { type KdfParams, type StoredKey, decodeRecoveryFile, kdfMemory, unwrapKey } from '../repository/keys.js';
import { RepositoryLock } from '../repository/lock.js';
import { Repository } from '../repository/repository.js';
import { repositoryBackend } from './repository.js';

export interface KeyInfo {
  /** The SHA-256 in the key object's name; a unique prefix of it names the key. */
  readonly id: string;
  readonly label?: string;
  readonly created: string;
  readonly kdf: { readonly name: 'scrypt'; readonly N: number; readonly r: number; readonly p: number; readonly memoryMiB: number };
  /** This process opened the repository with this key's password. */
  readonly current: boolean;
}

/** Key ids are shown this long, or longer where two keys share that many digits. */
const SHORT_ID = 8;

function info(repo: Repository, key: StoredKey): KeyInfo {
  const { kdf, label, created } = key.record;
  return {
    id: key.id, ...(label !== undefined ? { label } : {}), created,
    kdf: { name: kdf.name, N: kdf.N, r: kdf.r, p: kdf.p, memoryMiB: kdfMemory(kdf) / 2 ** 20 },
    current: repo.currentKey?.name === key.name,
  };
}

/** The length at which every id of `ids` is told apart (at least SHORT_ID). */
export function shortIdLength(ids: readonly string[]): number {
  let n = SHORT_ID;
  while (n < 64 && new Set(ids.map((id) => id.slice(0, n))).size < ids.length) n++;
  return n;
}

/** A key as messages name it: its short id, and its label when it has one. */
export function keyText(k: { readonly id: string; readonly label?: string | undefined }, length = SHORT_ID): string {
  return `${k.id.slice(0, length)}${k.label !== undefined ? ` (${JSON.stringify(k.label)})` : ''}`;
}

function describeKey(k: StoredKey, length = SHORT_ID): string {
  return keyText({ id: k.id, label: k.record.label }, length);
}

function notEncrypted(location: string, what: string): UsageError {
  return new UsageError(`${what} failed: repository ${location} is not encrypted (it was created with --encryption none), so it has no keys`);
}

function requireEncrypted(repo: Repository, what: string): void {
  if (!repo.encrypted) throw notEncrypted(repo.location, what);
}

/** This repository's readable keys; damaged ones and keys of another repository are reported and left out. */
async function ownKeys(repo: Repository, onWarning: (message: string) => void): Promise<StoredKey[]> {
  const keys = await repo.keys((err) => onWarning(err.message));
  const own: StoredKey[] = [];
  for (const k of keys) {
    if (k.record.repository === repo.config.id) own.push(k);
    else onWarning(`key ${k.name} belongs to another repository (${k.record.repository}); it is ignored`);
  }
  return own;
}

export async function listRepositoryKeys(repo: Repository, onWarning: (message: string) => void = () => {}): Promise<KeyInfo[]> {
  requireEncrypted(repo, 'listing keys');
  const keys = (await ownKeys(repo, onWarning)).map((k) => info(repo, k));
  return keys.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1));
}

export interface NewKey {
  /** The new key's password: asked for only once the repository is open. */
  readonly password: () => Promise<string>;
  readonly kdf?: KdfParams | undefined;
  readonly label?: string | undefined;
}

/** Wraps the master key with another password. */
export async function addRepositoryKey(repo: Repository, key: NewKey): Promise<KeyInfo> {
  requireEncrypted(repo, 'key add');
  return info(repo, await repo.addKey(await key.password(), key.kdf, key.label));
}

/** The key a hex prefix names; a usage error listing the candidates when none or several do. */
function pick(repo: Repository, keys: readonly StoredKey[], prefix: string): StoredKey {
  if (!/^[0-9a-f]+$/i.test(prefix)) throw new UsageError(`key remove: ${JSON.stringify(prefix)} is not a key id (hex digits, as vmbkp key list shows)`);
  const p = prefix.toLowerCase();
  const found = keys.filter((k) => k.id.startsWith(p));
  if (found.length === 1) return found[0]!;
  const length = shortIdLength(keys.map((k) => k.id));
  if (found.length === 0) {
    throw new UsageError(`key remove: repository ${repo.location} has no key ${prefix}; its keys: ${keys.map((k) => describeKey(k, length)).join(', ') || 'none readable'}`);
  }
  throw new UsageError(`key remove: ${prefix} names ${found.length} keys: ${found.map((k) => describeKey(k, length)).join(', ')}; give more digits`);
}

/**
 * Removes the key `prefix` names, under the exclusive lock. Refused (nothing changed): the
 * last key, and the key this process opened the repository with (its holder would lock
 * themselves out; another key's password removes it, or key passwd replaces it).
 */
export async function removeRepositoryKey(repo: Repository, prefix: string, onWarning: (message: string) => void = () => {}): Promise<KeyInfo> {
  requireEncrypted(repo, 'key remove');
  const lock = await RepositoryLock.acquire(repo, 'exclusive', `key remove ${prefix}`, onWarning);
  try {
    const keys = await ownKeys(repo, onWarning);
    const key = pick(repo, keys, prefix);
    if (keys.length === 1) {
      throw new UsageError(`key remove refused: key ${describeKey(key)} is the last key of repository ${repo.location}; without it nobody could open the repository (add another with vmbkp key add first)`);
    }
    if (key.name === repo.currentKey?.name) {
      const length = shortIdLength(keys.map((k) => k.id));
      const others = keys.filter((k) => k.name !== key.name).map((k) => describeKey(k, length));
      throw new UsageError(`key remove refused: key ${describeKey(key)} is the one your password opened; give the password of another key (${others.join(', ')}) with --repo-password-file FILE, or change this key's password with vmbkp key passwd`);
    }
    const removed = info(repo, key);
    await repo.removeKey(key);
    return removed;
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}

/**
 * Replaces the key this process opened the repository with by one for a new password
 * (same label), under the exclusive lock: the new key is written first, then the old one
 * removed, so a failure in between leaves both passwords working, never neither.
 */
export async function changeRepositoryPassword(repo: Repository, key: Omit<NewKey, 'label'>, onWarning: (message: string) => void = () => {}): Promise<{ added: KeyInfo; removed: KeyInfo }> {
  requireEncrypted(repo, 'key passwd');
  const old = repo.currentKey;
  if (!old) throw new UsageError('key passwd needs the repository opened with a password; with a master key file, use key add');
  const password = await key.password();
  if (await unwrapKey(old, password)) throw new UsageError(`key passwd: the new password is the one key ${describeKey(old)} already has; nothing was changed`);
  const lock = await RepositoryLock.acquire(repo, 'exclusive', 'key passwd', onWarning);
  try {
    const added = await repo.addKey(password, key.kdf, old.record.label);
    const removed = info(repo, old);
    try {
      await repo.removeKey(old);
    } catch (err) {
      throw withNote(err, `the new password's key ${added.id.slice(0, SHORT_ID)} was added and the old key ${old.id.slice(0, SHORT_ID)} is still there: both passwords work; remove it with vmbkp key remove ${old.id.slice(0, SHORT_ID)}`);
    }
    repo.useKey(added);
    return { added: info(repo, added), removed: { ...removed, current: false } };
  } catch (err) {
    await lock.releaseAfterFailure();
    throw err;
  } finally {
    await lock.release();
  }
}

/**
 * Writes the recovery copy of the master key to `file`, created with mode 0600; an existing
 * file is never overwritten. Whoever holds the file reads (and writes) every backup.
 */
export async function exportRecoveryFile(repo: Repository, file: string): Promise<void> {
  requireEncrypted(repo, 'key export');
  const content = repo.exportMasterKey();
  try {
    await writeNew(file, content);
  } finally {
    content.fill(0);
  }
}

async function writeNew(file: string, content: Buffer): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`key export refused: ${file} exists; it is not overwritten (choose another file)`, { cause: err });
    throw new InputError(`key export: creating ${file} failed: ${describeCause(err)}`, { cause: err });
  }
  try {
    await fh.writeFile(content);
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(file, { force: true });
    throw new IoError(`key export: writing ${file} failed: ${describeCause(err)} (the file was removed)`, { cause: err });
  }
}

/**
 * Opens the repository at `location` with the recovery copy in `file` (vmbkp key export)
 * instead of a password: the way back in when every password is lost.
 */
export async function openWithRecoveryFile(location: string, file: string): Promise<Repository> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(file);
  } catch (err) {
    throw new InputError(`reading master key file ${file} failed: ${describeCause(err)}`, { cause: err });
  }
  const recovery = decodeRecoveryFile(raw, file);
  raw.fill(0);
  const backend = await repositoryBackend(location);
  const config = await readConfig(backend);
  if (!config.encryption) throw notEncrypted(location, 'key add');
  if (config.id !== recovery.repository) {
    throw new UsageError(`master key file ${file} belongs to repository ${recovery.repository}, not to ${location} (${config.id})`);
  }
  return Repository.open(backend, { masterKey: recovery.master });
}
