/**
 * The master index through the CLI, with every index file merged into the local lookup
 * file (VMBKP_INDEX_MEMORY_ENTRIES=0; a backup merges its own index file too): backups
 * dedup against it, restores and verify find blobs through it, opening reads only the index files it does not cover, and a process
 * killed while writing it (failpoint lookup:half-written) leaves the previous one intact and
 * the repository usable.
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LookupFile } from '../src/repository/lookup-file.js';
import { INDEX_PREFIX } from '../src/repository/layout.js';
import { LocalBackend } from '../src/storage/local.js';
import { overrideBackend } from './backend-override.js';
import { makeImage, sha256File, tempDir, vmbkp } from './helpers.js';
import { openTestRepository } from './repo-internals.js';

describe('master index through the lookup file', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const file = (n: string) => path.join(dir, n);
  let repo: string;
  let cache: string;
  let lookup: string;
  const merged = () => ({ VMBKP_CACHE_DIR: cache, VMBKP_INDEX_MEMORY_ENTRIES: '0' });
  const inMemory = () => ({ VMBKP_CACHE_DIR: cache, VMBKP_INDEX_MEMORY_ENTRIES: '1000000' });
  const ok = async (args: string[], env: NodeJS.ProcessEnv) => {
    const r = await vmbkp(args, { env });
    assert.equal(r.code, 0, `vmbkp ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const indexFiles = async () => (await fs.readdir(path.join(repo, 'index'))).map((n) => `${INDEX_PREFIX}${n}`).sort();
  const covered = () => { const f = LookupFile.open(lookup, repoId); try { return [...f.covers].sort(); } finally { f.close(); } };
  let repoId: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-lookup-'));
    repo = file('repo');
    cache = file('cache');
    await ok(['init', '--repo', repo], {});
    repoId = (JSON.parse(await fs.readFile(path.join(repo, 'config'), 'utf8')) as { id: string }).id;
    lookup = path.join(cache, 'index', repoId, 'lookup');
    for (const seed of [1, 2, 3]) await makeImage(file(`d${seed}.img`), '4M', 700 + seed);
  });
  after(() => cleanup());

  it('backs up (dedup), restores and verifies through it; opening reads only the index files it does not cover', async () => {
    // Three backups, three index files. With no room in memory (VMBKP_INDEX_MEMORY_ENTRIES=0)
    // each backup merges its own index file into the lookup file as soon as it writes it.
    for (const seed of [1, 2, 3]) {
      await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${file(`d${seed}.img`)}`], merged());
      assert.deepEqual(covered(), await indexFiles(), `backup ${seed} merged the index file it wrote`);
    }
    assert.equal((await indexFiles()).length, 3);
    // Dedup through the lookup file: the same disk again stores no chunk.
    const again = await ok(['backup', '--repo', repo, '--set', 'vm', '--json', `sda=file:${file('d1.img')}`], merged());
    assert.deepEqual(covered(), await indexFiles());
    const stored = (JSON.parse(again.stdout) as { disks: { bytesStored: number }[] }).disks[0]!.bytesStored;
    assert.ok(stored < 64 * 1024, `only the disk's index is new, ${stored} bytes stored`);
    for (const [generation, seed] of [[1, 1], [2, 2], [3, 3], [4, 1]] as const) {
      const to = file(`r${generation}.img`);
      await ok(['restore', '--repo', repo, '--set', 'vm', '--generation', String(generation), '--disk', 'sda', '--to', `file:${to}`], merged());
      assert.equal(await sha256File(to), await sha256File(file(`d${seed}.img`)), `generation ${generation}`);
    }
    await ok(['verify', '--repo', repo, '--read-data'], merged());
    assert.deepEqual(covered(), await indexFiles(), 'everything merged');

    // One more index file, kept in memory by the process that wrote it.
    await makeImage(file('d4.img'), '4M', 704);
    await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${file('d4.img')}`], inMemory());
    const fresh = (await indexFiles()).filter((n) => !covered().includes(n));
    assert.equal(fresh.length, 1);
    const reads: string[] = [];
    const inner = new LocalBackend(repo);
    const counting = overrideBackend(inner, { get: (name, range, into) => { if (name.startsWith(INDEX_PREFIX)) reads.push(name); return inner.get(name, range, into); } });
    process.env['VMBKP_CACHE_DIR'] = cache;
    process.env['VMBKP_INDEX_MEMORY_ENTRIES'] = '1000000';
    try {
      const r = await openTestRepository(counting);
      reads.length = 0; // opening may peek at one index file's magic (encryptedObjectsIn)
      await r.loadIndex();
      assert.deepEqual(reads, fresh, 'opening read only the index file the lookup file does not cover');
      assert.equal(r.indexStats.indexFilesRead, 1);
    } finally {
      delete process.env['VMBKP_CACHE_DIR'];
      delete process.env['VMBKP_INDEX_MEMORY_ENTRIES'];
    }
  });

  it('kill -9 while the lookup file is written leaves the previous one and a usable repository', async () => {
    const before = await fs.readFile(lookup);
    assert.ok((await indexFiles()).length > covered().length, 'an index file left to merge');
    const killed = await vmbkp(['verify', '--repo', repo], { env: { ...merged(), VMBKP_FAILPOINT: 'lookup:half-written' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok((await fs.readdir(path.dirname(lookup))).some((n) => n.endsWith('.tmp')), 'killed midway: its half-written file is left');
    assert.ok(before.equals(await fs.readFile(lookup)), 'the lookup file is the previous one, whole');
    const to = file('after-kill.img');
    await ok(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `file:${to}`], merged());
    assert.equal(await sha256File(to), await sha256File(file('d4.img')));
    assert.deepEqual(covered(), await indexFiles(), 'the next run merged what was left');
    assert.deepEqual((await fs.readdir(path.dirname(lookup))).filter((n) => n.endsWith('.tmp')), [], 'and removed the dead build\'s files');
    await ok(['verify', '--repo', repo], merged());
    assert.ok(existsSync(lookup));
  });
});
