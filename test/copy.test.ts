/**
 * `vmbkp copy`: generations copied between local repositories of every pairing (encrypted
 * with different keys, encrypted to plaintext and back, one key shared through
 * `init --from-repo`) restore byte-identical and verify; only chunks the destination lacks
 * are read (one key) or only those that changed since the generation copied before (two
 * keys); a second copy reads and writes nothing; a copy killed with SIGKILL completes when
 * run again, without duplicates; a corrupt source chunk fails the copy with exit 5 and
 * commits nothing; bad input is a one-line exit 2 that changes nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packName } from '../src/repository/layout.js';
import {
  REPO_PASSWORD_FILE, type RunResult, flipByte, listFiles, makeImage, mutateImage, oneLine, sha256File, startVmbkp, tempDir, treeDigest, verifyJson, vmbkp, vmbkpJson,
} from './helpers.js';
import { chunkIds, openTestRepository } from './repo-internals.js';

const CHUNK = 256 * 1024;
/** The source's password, for every copy: all test repositories share one password (not one key). */
const FROM = { VMBKP_FROM_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE };

interface GenerationCopy {
  set: string; id: string; from: number; to: number; status: string;
  chunksRead: number; bytesRead: number; chunksSent: number; bytesSent: number; chunksPresent: number;
}
interface CopyJson {
  from: string; to: string; dryRun: boolean; sets: string[]; generations: GenerationCopy[]; copied: number; present: number;
  chunksRead: number; bytesRead: number; chunksSent: number; bytesSent: number; chunksPresent: number; sameIds: boolean;
}
interface ListJson { sets: { name: string; generations: { generation: number; id: string; disks: { chunksStored: number }[] }[] }[] }

function copy(from: string, to: string, ...args: string[]): Promise<RunResult> {
  return vmbkp(['copy', '--from-repo', from, '--repo', to, ...args], { env: FROM });
}

async function copyJson(from: string, to: string, ...args: string[]): Promise<{ r: RunResult; report: CopyJson }> {
  const r = await copy(from, to, ...args, '--json');
  assert.equal(r.code, 0, `copy ${from} → ${to} ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return { r, report: JSON.parse(r.stdout) as CopyJson };
}

async function list(repo: string): Promise<ListJson> {
  return vmbkpJson<ListJson>(['list', '--repo', repo]);
}

/** set → [generation number, manifest id] in order. */
async function generations(repo: string): Promise<Record<string, [number, string][]>> {
  const out: Record<string, [number, string][]> = {};
  for (const s of (await list(repo)).sets) out[s.name] = s.generations.map((g) => [g.generation, g.id]);
  return out;
}

async function init(repo: string, ...args: string[]): Promise<void> {
  const r = await vmbkp(['init', '--repo', repo, ...args], { env: FROM });
  assert.equal(r.code, 0, r.stderr);
}

function assertVerifies(v: { r: RunResult; report: { ok: boolean; problems: unknown[] } }, what: string): void {
  assert.equal(v.r.code, 0, `${what}: verify exited ${v.r.code}: ${v.r.stderr}`);
  assert.equal(v.report.ok, true, what);
  assert.deepEqual(v.report.problems, [], what);
}

/**
 * Distinct non-zero chunks of `next` at positions where it differs from `prev`: what a copy
 * between repositories of different keys must read for `next` when `prev` was copied before.
 */
async function changedChunks(prev: string, next: string): Promise<number> {
  const [a, b] = [await fs.readFile(prev), await fs.readFile(next)];
  const seen = new Set<string>();
  for (let o = 0; o < b.length; o += CHUNK) {
    const cb = b.subarray(o, o + CHUNK);
    if (cb.every((x) => x === 0) || cb.equals(a.subarray(o, o + CHUNK))) continue;
    seen.add(createHash('sha256').update(cb).digest('hex'));
  }
  return seen.size;
}

/** Distinct non-zero chunks of an image. */
async function distinctChunks(image: string): Promise<number> {
  const b = await fs.readFile(image);
  const seen = new Set<string>();
  for (let o = 0; o < b.length; o += CHUNK) {
    const c = b.subarray(o, o + CHUNK);
    if (!c.every((x) => x === 0)) seen.add(createHash('sha256').update(c).digest('hex'));
  }
  return seen.size;
}

describe('vmbkp copy', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const img = (name: string) => path.join(dir, `${name}.img`);
  const repo = (name: string) => path.join(dir, name);
  const sha = new Map<string, string>();
  /** Which image each generation of the sources holds: set → images in generation order. */
  const IMAGES: Record<string, string[]> = { vm1: ['a0', 'a1', 'a2'], vm2: ['b'] };

  /** Restores every generation of `target` whose source generation is known and compares it with its image. */
  async function assertRestores(target: string, what: string): Promise<void> {
    const gens = await generations(target);
    assert.deepEqual(Object.keys(gens).sort(), ['vm1', 'vm2'], what);
    for (const [set, images] of Object.entries(IMAGES)) {
      assert.equal(gens[set]!.length, images.length, `${what}: set ${set} has one generation per source generation`);
      for (let n = 0; n < images.length; n++) {
        const out = path.join(dir, 'restored.img');
        const r = await vmbkp(['restore', '--repo', target, '--set', set, '--generation', String(gens[set]![n]![0]), '--disk', 'sda', '--to', `file:${out}`]);
        assert.equal(r.code, 0, `${what}: restore of ${set} generation ${n + 1}: ${r.stderr}`);
        assert.equal(await sha256File(out), sha.get(images[n]!), `${what}: ${set} generation ${n + 1} restores to ${images[n]}`);
        await fs.rm(out);
      }
    }
  }

  /** vm1: a0 full, a1 incr, a2 diff; then vm2: b. */
  async function backUpSources(target: string): Promise<void> {
    const disk = img('disk');
    const plan: [string, string[]][] = [['a0', ['--mode', 'full']], ['a1', ['--mode', 'incr', '--changed', `sda=${img('a1').replace(/\.img$/, '.json')}`]], ['a2', ['--mode', 'diff']]];
    for (const [image, args] of plan) {
      await fs.copyFile(img(image), disk);
      const r = await vmbkp(['backup', '--repo', target, '--set', 'vm1', ...args, `sda=file:${disk}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    await fs.rm(disk);
    const r = await vmbkp(['backup', '--repo', target, '--set', 'vm2', `sda=file:${img('b')}`]);
    assert.equal(r.code, 0, r.stderr);
  }

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-copy-'));
    await makeImage(img('a0'), '32M', 301);
    await mutateImage(img('a0'), img('a1'), path.join(dir, 'a1.json'), 8, 302);
    await mutateImage(img('a1'), img('a2'), path.join(dir, 'a2.json'), 8, 303);
    // Not a whole number of chunks: its last chunk is short, as a disk's may be.
    await makeImage(img('b'), '12.1M', 304);
    for (const name of ['a0', 'a1', 'a2', 'b']) sha.set(name, await sha256File(img(name)));
    await init(repo('src-enc'));
    await backUpSources(repo('src-enc'));
    await init(repo('src-plain'), '--encryption', 'none');
    await backUpSources(repo('src-plain'));
  });
  after(() => cleanup());

  it('encrypted → encrypted with another key: every generation restores byte-identical, verify --read-data passes, and each generation after the first reads only what changed', async () => {
    await init(repo('dst-enc'));
    const { report } = await copyJson(repo('src-enc'), repo('dst-enc'));
    assert.equal(report.sameIds, false);
    assert.equal(report.copied, 4);
    assert.equal(report.present, 0);
    assert.deepEqual(report.generations.map((g) => [g.set, g.from, g.to, g.status]),
      [['vm1', 1, 1, 'copied'], ['vm1', 2, 2, 'copied'], ['vm1', 3, 3, 'copied'], ['vm2', 1, 1, 'copied']]);
    const src = await generations(repo('src-enc'));
    assert.deepEqual(report.generations.map((g) => g.id), [...src['vm1']!.map(([, id]) => id), ...src['vm2']!.map(([, id]) => id)], 'manifest ids are kept');
    assert.deepEqual(await generations(repo('dst-enc')), src, 'same numbers and ids in a destination that had nothing');
    const [g1, g2, g3] = report.generations;
    assert.equal(g1!.chunksRead, await distinctChunks(img('a0')), 'the first generation is read whole');
    assert.equal(g2!.chunksRead, await changedChunks(img('a0'), img('a1')), 'the second reads the chunks that changed since the first');
    assert.equal(g3!.chunksRead, await changedChunks(img('a1'), img('a2')), 'the third the chunks that changed since the second');
    assert.ok(g2!.chunksPresent > 0 && g2!.chunksRead < g1!.chunksRead / 2);
    assert.ok(report.bytesSent > 0 && report.bytesRead > 0);
    await assertRestores(repo('dst-enc'), 'encrypted → encrypted');
    assertVerifies(await verifyJson(repo('dst-enc'), true), 'verify --read-data of the copy');
  });

  it('a second copy reads no chunk, sends nothing and commits nothing', async () => {
    const before = await treeDigest(repo('dst-enc'));
    const { report } = await copyJson(repo('src-enc'), repo('dst-enc'));
    assert.equal(report.copied, 0);
    assert.equal(report.present, 4);
    assert.deepEqual(report.generations.map((g) => [g.set, g.from, g.to, g.status]),
      [['vm1', 1, 1, 'present'], ['vm1', 2, 2, 'present'], ['vm1', 3, 3, 'present'], ['vm2', 1, 1, 'present']]);
    for (const k of ['chunksRead', 'bytesRead', 'chunksSent', 'bytesSent', 'chunksPresent'] as const) assert.equal(report[k], 0, k);
    assert.deepEqual(await treeDigest(repo('dst-enc')), before, 'the destination is unchanged');
    const human = await copy(repo('src-enc'), repo('dst-enc'));
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout, 'copied 0 generations of 0 sets (4 skipped, already there): 0 B read, 0 B sent\n');
  });

  it('new generations of the source are copied after the destination\'s own, in order', async () => {
    const target = repo('dst-own');
    await init(target);
    // The destination has a backup of its own in set vm1, and vm1 generation 1 already.
    const own = await vmbkp(['backup', '--repo', target, '--set', 'vm1', `sda=file:${img('b')}`]);
    assert.equal(own.code, 0, own.stderr);
    await copyJson(repo('src-enc'), target, '--set', 'vm1', '--generation', '1');
    const { report } = await copyJson(repo('src-enc'), target, '--set', 'vm1');
    assert.deepEqual(report.generations.map((g) => [g.from, g.to, g.status]), [[1, 2, 'present'], [2, 3, 'copied'], [3, 4, 'copied']]);
    const latest = await copyJson(repo('src-enc'), target, '--generation', 'latest');
    assert.deepEqual(latest.report.generations.map((g) => [g.set, g.from, g.to, g.status]), [['vm1', 3, 4, 'present'], ['vm2', 1, 1, 'copied']]);
    // Numbers are the destination's: the newest generation alone becomes generation 1 of an empty one.
    const fresh = repo('dst-latest-only');
    await init(fresh);
    const only = await copyJson(repo('src-enc'), fresh, '--generation', 'latest');
    assert.deepEqual(only.report.generations.map((g) => [g.set, g.from, g.to, g.status]), [['vm1', 3, 1, 'copied'], ['vm2', 1, 1, 'copied']]);
    const out = path.join(dir, 'own.img');
    const r = await vmbkp(['restore', '--repo', target, '--set', 'vm1', '--generation', '4', '--disk', 'sda', '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(out), sha.get('a2'));
    await fs.rm(out);
  });

  it('--dry-run says what would be copied and changes nothing', async () => {
    const target = repo('dst-dry');
    await init(target);
    await copyJson(repo('src-enc'), target, '--set', 'vm1', '--generation', '1');
    const before = await treeDigest(target);
    const { report } = await copyJson(repo('src-enc'), target, '--dry-run');
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.generations.map((g) => [g.set, g.from, g.to, g.status]),
      [['vm1', 1, 1, 'present'], ['vm1', 2, 2, 'planned'], ['vm1', 3, 3, 'planned'], ['vm2', 1, 1, 'planned']]);
    assert.equal(report.bytesRead, 0);
    assert.deepEqual(await treeDigest(target), before);
  });

  it('encrypted → plaintext (with a warning) and plaintext → encrypted restore byte-identical and verify', async () => {
    await init(repo('dst-plain'), '--encryption', 'none');
    const { r, report } = await copyJson(repo('src-enc'), repo('dst-plain'));
    assert.equal(report.copied, 4);
    assert.equal(report.sameIds, false);
    assert.match(oneLine(r.stderr), /^vmbkp: warning: \S+dst-plain is not encrypted: the generations copied from \S+src-enc are stored there in plaintext$/);
    await assertRestores(repo('dst-plain'), 'encrypted → plaintext');
    assertVerifies(await verifyJson(repo('dst-plain'), true), 'verify of the plaintext copy');

    await init(repo('dst-from-plain'));
    const back = await copyJson(repo('src-plain'), repo('dst-from-plain'));
    assert.equal(back.report.copied, 4);
    assert.equal(back.r.stderr, '');
    await assertRestores(repo('dst-from-plain'), 'plaintext → encrypted');
    assertVerifies(await verifyJson(repo('dst-from-plain'), true), 'verify of the encrypted copy');
  });

  for (const kind of ['encrypted', 'plaintext'] as const) {
    it(`init --from-repo (${kind}): one key, so a copy reads only the chunks the destination lacks`, async () => {
      const source = repo(kind === 'encrypted' ? 'src-enc' : 'src-plain');
      const target = repo(`dst-shared-${kind}`);
      const made = await vmbkp(['init', '--repo', target, '--from-repo', source, '--json', ...(kind === 'plaintext' ? ['--encryption', 'none'] : [])], { env: FROM });
      assert.equal(made.code, 0, made.stderr);
      const info = JSON.parse(made.stdout) as { chunkSize: number; encryption: string; id: string; from: { sharesKey: boolean } };
      assert.equal(info.from.sharesKey, kind === 'encrypted');
      assert.equal(info.encryption, kind === 'encrypted' ? 'aes-256-gcm' : 'none');
      const srcConfig = JSON.parse(await fs.readFile(path.join(source, 'config'), 'utf8')) as { id: string; chunkSize: number };
      assert.equal(info.chunkSize, srcConfig.chunkSize);
      assert.notEqual(info.id, srcConfig.id, 'a repository of its own');
      if (kind === 'encrypted') {
        // Its own key object, under its own password; the keys of the source are not copied.
        assert.equal((await listFiles(path.join(target, 'keys'))).length, 1);
        const [a, b] = [await openTestRepository(source), await openTestRepository(target)];
        assert.ok(a.codec.id(Buffer.from('x')).equals(b.codec.id(Buffer.from('x'))), 'chunk ids are the same');
      }

      const stored = (await list(source)).sets.find((s) => s.name === 'vm1')!.generations.map((g) => g.disks[0]!.chunksStored);
      const reads: number[] = [];
      for (const n of [1, 2, 3]) {
        const { report } = await copyJson(source, target, '--set', 'vm1', '--generation', String(n));
        assert.equal(report.sameIds, true);
        assert.equal(report.copied, 1);
        reads.push(report.chunksRead);
        assert.equal(report.chunksSent, report.chunksRead, 'every chunk read was missing, so it is sent');
      }
      // Each backup stored exactly the chunks its repository lacked; the copy reads exactly those.
      assert.deepEqual(reads, stored);
      const rest = await copyJson(source, target);
      assert.equal(rest.report.copied, 1);
      await assertRestores(target, `init --from-repo (${kind})`);
      assertVerifies(await verifyJson(target, true), 'verify of the shared-key copy');
    });
  }

  it('init --from-repo refuses --chunk-size beside it (exit 2) and a source that is not there (exit 6); nothing is made', async () => {
    const target = repo('dst-not-made');
    const both = await vmbkp(['init', '--repo', target, '--from-repo', repo('src-enc'), '--chunk-size', '64K'], { env: FROM });
    assert.equal(both.code, 2, both.stderr);
    assert.match(oneLine(both.stderr), /^vmbkp: error: --chunk-size and --from-repo exclude each other/);
    const none = await vmbkp(['init', '--repo', target, '--from-repo', repo('no-such-source')], { env: FROM });
    assert.equal(none.code, 6, none.stderr);
    assert.match(oneLine(none.stderr), /^vmbkp: error: no vmbkp repository at \S+no-such-source/);
    await assert.rejects(fs.stat(target));
  });

  async function killedCopy(failpoint: string, target: string, args: string[] = []): Promise<number> {
    const c = startVmbkp(['copy', '--from-repo', repo('src-enc'), '--repo', target, ...args], { env: { ...FROM, VMBKP_FAILPOINT: failpoint } });
    const result = await c.done;
    assert.equal(result.signal, 'SIGKILL', `VMBKP_FAILPOINT=${failpoint} should have killed the copy; exit ${result.code}: ${result.stderr}`);
    return c.pid;
  }

  /** What every killed copy must allow: the next copy completes, restores, verifies; nothing twice; gc clears the leftovers. */
  async function completesAfterKill(target: string, what: string): Promise<CopyJson> {
    const { report } = await copyJson(repo('src-enc'), target);
    const src = await generations(repo('src-enc'));
    const got = await generations(target);
    for (const set of ['vm1', 'vm2']) {
      assert.deepEqual(got[set]!.map(([, id]) => id), src[set]!.map(([, id]) => id), `${what}: set ${set} holds each source generation once, in order`);
      assert.deepEqual(got[set]!.map(([n]) => n), src[set]!.map((_, i) => i + 1), `${what}: numbered without gaps`);
    }
    await assertRestores(target, what);
    assertVerifies(await verifyJson(target, true), `${what}: verify --read-data`);
    const g = await vmbkp(['gc', '--repo', target]);
    assert.equal(g.code, 0, g.stderr);
    const v = await verifyJson(target, true);
    assertVerifies(v, `${what}: verify after gc`);
    assert.deepEqual(await listFiles(path.join(target, 'locks')), []);
    return report;
  }

  it('killed with SIGKILL after writing packs, before their index file: the next copy completes, nothing twice', async () => {
    const target = repo('dst-killed-packs');
    await init(target);
    const pid = await killedCopy('flush:packs-written', target);
    assert.deepEqual(await generations(target), {}, 'nothing was committed');
    assert.ok((await listFiles(path.join(target, 'data'))).length > 0, 'the killed copy left packs');
    const v = await verifyJson(target);
    assertVerifies(v, 'verify after the kill');
    assert.ok(v.report.unreferencedPacks > 0, 'its packs are unreferenced, not problems');
    const report = await completesAfterKill(target, 'after a kill at flush:packs-written');
    assert.equal(report.copied, 4);
    assert.ok(pid > 0);
  });

  it('killed after the index file, before the manifest: the next copy finds the chunks and sends none of them again', async () => {
    const target = repo('dst-killed-commit');
    await init(target);
    await killedCopy('copy:before-commit', target, ['--set', 'vm1']);
    assert.deepEqual(await generations(target), {}, 'nothing was committed');
    const report = await completesAfterKill(target, 'after a kill at copy:before-commit');
    const first = report.generations[0]!;
    assert.equal(first.status, 'copied');
    assert.equal(first.chunksSent, 0, 'the first generation\'s chunks were indexed before the kill');
    assert.ok(first.chunksPresent > 0);
  });

  it('killed after committing one generation: the next copy copies the others', async () => {
    const target = repo('dst-killed-one');
    await init(target);
    await killedCopy('copy:committed', target);
    const got = await generations(target);
    assert.deepEqual(Object.keys(got), ['vm1']);
    assert.equal(got['vm1']!.length, 1, 'exactly one generation was committed');
    const report = await completesAfterKill(target, 'after a kill at copy:committed');
    assert.deepEqual(report.generations.map((g) => g.status), ['present', 'copied', 'copied', 'copied']);
  });

  it('two copies at once: the generation both sent is committed once', async () => {
    const target = repo('dst-twice');
    await init(target);
    // The first stops after sending its first generation, before committing it …
    const first = startVmbkp(['copy', '--from-repo', repo('src-enc'), '--repo', target, '--json'], { env: { ...FROM, VMBKP_FAILPOINT: 'copy:before-commit:pause' } });
    await first.stderrMatching(/failpoint copy:before-commit: paused/);
    // … while the second copies everything.
    const second = await copyJson(repo('src-enc'), target);
    assert.equal(second.report.copied, 4);
    first.child.kill('SIGUSR2');
    // Were it to commit its generation anyway, it would go on to the next one and pause there again.
    const outcome = await Promise.race([
      first.done.then(() => 'exited'),
      first.stderrMatching(/paused[\s\S]*paused/).then(() => 'paused again', () => 'exited'),
    ]);
    if (outcome !== 'exited') first.child.kill('SIGKILL');
    const r = await first.done;
    assert.equal(outcome, 'exited', `the first copy went on to copy another generation: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as CopyJson;
    assert.deepEqual(report.generations.map((g) => [g.set, g.from, g.to, g.status]),
      [['vm1', 1, 1, 'present'], ['vm1', 2, 2, 'present'], ['vm1', 3, 3, 'present'], ['vm2', 1, 1, 'present']]);
    assert.ok(report.generations[0]!.chunksRead > 0, 'the first had read and sent its generation before it found it committed');
    const got = await generations(target);
    assert.deepEqual(got, await generations(repo('src-enc')), 'each generation once, numbered as in the source');
    assertVerifies(await verifyJson(target), 'verify');
  });

  it('a corrupt source chunk: exit 5 in one line naming the generation and the chunk; nothing committed for that generation', async () => {
    const source = repo('src-corrupt');
    await fs.cp(repo('src-enc'), source, { recursive: true });
    const target = repo('dst-corrupt');
    await init(target);
    await copyJson(source, target, '--set', 'vm1', '--generation', '1');
    const before = await generations(target);

    // A chunk that only generation 2 of vm1 holds.
    const r = await openTestRepository(source);
    await r.loadIndex();
    const old = new Set([...chunkIds(r, await fs.readFile(img('a0'))).keys(), ...chunkIds(r, await fs.readFile(img('b'))).keys()]);
    const [hex, offsets] = [...chunkIds(r, await fs.readFile(img('a1')))].find(([h]) => !old.has(h))!;
    const loc = r.lookup(hex)!;
    await flipByte(path.join(source, packName(loc.pack)), loc.offset + Math.floor(loc.length / 2));

    const c = await copy(source, target, '--set', 'vm1');
    assert.equal(c.code, 5, c.stderr);
    const line = oneLine(c.stderr);
    assert.match(line, new RegExp(`^vmbkp: error: copying set vm1 generation 2 disk sda failed: the chunk at offset ${offsets[0]}: blob ${hex} in pack ${loc.pack} is corrupt: `));
    assert.equal(c.stdout, '');
    assert.deepEqual(await generations(target), before, 'generation 2 was not committed (nor 3 after it)');
    assertVerifies(await verifyJson(target, true), 'the destination verifies');
  });

  describe('bad input: one line, nothing changed', () => {
    let target: string;
    let unchanged: Map<string, string>;
    before(async () => {
      target = repo('dst-bad');
      await init(target);
      unchanged = await treeDigest(target);
    });

    const cases: [string, () => Promise<RunResult>, RegExp][] = [
      ['no --from-repo', () => vmbkp(['copy', '--repo', target], { env: FROM }),
        /^vmbkp: error: no source repository given: pass --from-repo DIR \(or s3:URL, or the name of a repository in the config file\) or set VMBKP_FROM_REPO$/],
      ['the destination as its own source', () => copy(target, target),
        /^vmbkp: error: copying from \S+ to itself refused/],
      ['the same repository by another path', () => copy(`${target}/.`, target),
        /^vmbkp: error: copying from \S+ to \S+ refused: they are the same repository \(id [0-9a-f-]+\)$/],
      ['an unknown set', () => copy(repo('src-enc'), target, '--set', 'nosuch'),
        /^vmbkp: error: set nosuch has no generations in \S+src-enc$/],
      ['a generation the set does not have', () => copy(repo('src-enc'), target, '--set', 'vm2', '--generation', '7'),
        /^vmbkp: error: set vm2 has no generation 7 in \S+src-enc$/],
      ['a generation number without one set', () => copy(repo('src-enc'), target, '--generation', '2'),
        /^vmbkp: error: --generation 2 needs exactly one --set/],
      ['a bad set name', () => copy(repo('src-enc'), target, '--set', '../x'),
        /^vmbkp: error: set name "\.\.\/x" is invalid/],
      ['an encrypted source without its password', () => vmbkp(['copy', '--from-repo', repo('src-enc'), '--repo', target], { env: { VMBKP_FROM_REPO_PASSWORD_FILE: '' } }),
        /^vmbkp: error: source repository \S+ is encrypted: give its password with --from-repo-password-file FILE, VMBKP_FROM_REPO_PASSWORD_FILE or VMBKP_FROM_REPO_PASSWORD_COMMAND$/],
    ];
    for (const [what, run, message] of cases) {
      it(what, async () => {
        const r = await run();
        assert.equal(r.code, 2, r.stderr);
        assert.match(oneLine(r.stderr), message);
        assert.equal(r.stdout, '');
        assert.deepEqual(await treeDigest(target), unchanged);
      });
    }

    it('repositories of different chunk sizes', async () => {
      const small = repo('dst-small-chunks');
      await init(small, '--chunk-size', '64K');
      const was = await treeDigest(small);
      const r = await copy(repo('src-enc'), small);
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneLine(r.stderr), /^vmbkp: error: copying from \S+ to \S+ refused: their chunk sizes differ \(262144 and 65536 bytes\) and chunks are not cut again; copy into a repository made with: vmbkp init --repo DEST --from-repo \S+$/);
      assert.deepEqual(await treeDigest(small), was);
    });

    it('a wrong source password: exit 8', async () => {
      const pw = path.join(dir, 'wrong.password');
      await fs.writeFile(pw, 'not the password\n');
      const r = await vmbkp(['copy', '--from-repo', repo('src-enc'), '--from-repo-password-file', pw, '--repo', target]);
      assert.equal(r.code, 8, r.stderr);
      assert.match(oneLine(r.stderr), /^vmbkp: error: opening repository \S+src-enc failed: the password opens none of its 1 key$/);
      assert.deepEqual(await treeDigest(target), unchanged);
    });
  });
});
