/**
 * A repository the tests made, read in process the way vmbkp reads it: opened with the
 * tests' password (test/helpers.ts), its packs' tables opened with its keys, chunks named
 * as it names them (HMAC ids when encrypted, SHA-256 when not). Tests that damage a
 * repository on purpose use these to find what to damage, whatever the repository's kind.
 */
import { promises as fs } from 'node:fs';
import { Repository } from '../src/repository/repository.js';
import { type PackEntry, decodePackTrailer } from '../src/repository/pack.js';
import type { StorageBackend } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local.js';
import { REPO_PASSWORD_FILE } from './helpers.js';

/** The repositories the acceptance suites run against: `init` arguments of each kind. */
export const REPOSITORY_KINDS = ['encrypted', 'plaintext'] as const;
export type RepositoryKind = (typeof REPOSITORY_KINDS)[number];
export function initArgs(kind: RepositoryKind): string[] {
  return kind === 'plaintext' ? ['--encryption', 'none'] : [];
}

/** The password every vmbkp the tests start reads (VMBKP_REPO_PASSWORD_FILE). */
export async function testPassword(): Promise<string> {
  const file = process.env['VMBKP_REPO_PASSWORD_FILE'] ?? REPO_PASSWORD_FILE;
  return (await fs.readFile(file, 'utf8')).split(/\r?\n/)[0]!;
}

/** Opens a repository (a directory, or a backend over one) as the CLI would with the tests' password. */
export function openTestRepository(where: string | StorageBackend): Promise<Repository> {
  return Repository.open(typeof where === 'string' ? new LocalBackend(where) : where, { password: testPassword });
}

/** A blob a pack's trailer lists, with its id in hex. */
export interface PackedBlob extends PackEntry {
  readonly hex: string;
}

/** The blobs a pack's trailer lists (`name`: data/XX/ID), its table opened with the repository's keys. */
export async function packEntries(repo: Repository, name: string): Promise<PackedBlob[]> {
  return decodePackTrailer(await repo.backend.get(name), name, repo.objects).map((e) => ({ ...e, hex: e.digest.toString('hex') }));
}

/** Every non-zero chunk of an image, by the id this repository gives it (hex) → the offsets where it occurs, in disk order. */
export function chunkIds(repo: Repository, image: Buffer): Map<string, number[]> {
  const { chunkSize } = repo.config;
  const map = new Map<string, number[]>();
  for (let o = 0; o < image.length; o += chunkSize) {
    const chunk = image.subarray(o, Math.min(image.length, o + chunkSize));
    if (chunk.every((b) => b === 0)) continue;
    const hex = repo.codec.id(chunk).toString('hex');
    map.set(hex, [...(map.get(hex) ?? []), o]);
  }
  return map;
}
