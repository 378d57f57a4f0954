/**
 * Acceptance of backups that cannot be deleted, against a real S3 server (Ceph RGW,
 * test/s3-server.ts): `init --lock-days` and what S3 then refuses; prune, gc and verify on
 * a locked repository; where an object lock cannot be had; and append-only credentials
 * under the bucket policy README.md prints (read from README.md, so the two cannot part).
 *
 * What S3 does with a DeleteObject without a VersionId in a locked (so versioned) bucket:
 * it succeeds and only adds a delete marker; the locked version stays. vmbkp then no longer
 * sees the object (a marker hides it from GET and LIST), until the marker itself (which no
 * lock protects) is deleted by its version id. The first test shows exactly that.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DeleteObjectCommand, GetObjectLockConfigurationCommand, HeadObjectCommand, ListBucketsCommand, PutBucketPolicyCommand,
  PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { Repository } from '../src/repository/repository.js';
import { S3Backend } from '../src/storage/s3.js';
import { ROOT, type RunResult, makeImage, oneLine, sha256File, startVmbkp, tempDir, vmbkp } from './helpers.js';
import { testPassword } from './repo-internals.js';
import { freshPrefix, httpStatus, keysUnder, objectList, s3Env, s3Repo, versionList } from './s3-repo.js';
import { type S3Server, s3Bucket, startS3 } from './s3-server.js';

interface ListJson { sets: { name: string; generations: { generation: number }[] }[] }
interface PruneJson { keep: { generation: number }[]; remove: number[]; locked: { generation: number; until: string }[] }
interface GcJson { packsRemoved: number; packsWritten: number; bytesFreed: number; locked?: { packs: number; bytes: number; until: string } }

const DAY = 86_400_000;
/** Clocks: the test's and the server's (RGW stamps nothing here, vmbkp sets retain-until from its own clock). */
const SLACK = 60_000;

let server: S3Server;
let s3: S3Client;
let owner: NodeJS.ProcessEnv;
let dir: string;
let cleanupDir: () => Promise<void>;
const img = (name: string) => path.join(dir, `${name}.img`);
const sha = new Map<string, string>();

before(async () => {
  server = await startS3();
  s3 = server.client();
  owner = s3Env(server);
  ({ dir, cleanup: cleanupDir } = await tempDir('vmbkp-s3-lock-'));
  for (const [name, seed] of [['a', 51], ['b', 52], ['c', 53]] as const) {
    await makeImage(img(name), '48M', seed);
    sha.set(name, await sha256File(img(name)));
  }
});

after(async () => {
  await server?.stop();
  await cleanupDir?.();
});

function cli(args: string[], env: NodeJS.ProcessEnv = owner): Promise<RunResult> {
  return vmbkp(args, { env });
}

async function ok(args: string[], env: NodeJS.ProcessEnv = owner): Promise<RunResult> {
  const r = await cli(args, env);
  assert.equal(r.code, 0, `vmbkp ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

async function json<T>(args: string[], env: NodeJS.ProcessEnv = owner): Promise<T> {
  return JSON.parse((await ok([...args, '--json'], env)).stdout) as T;
}

async function generations(repo: string, set: string, env: NodeJS.ProcessEnv = owner): Promise<number[]> {
  return (await json<ListJson>(['list', '--repo', repo], env)).sets.find((s) => s.name === set)?.generations.map((g) => g.generation) ?? [];
}

async function restoredSha(repo: string, set: string, generation: number, env: NodeJS.ProcessEnv = owner): Promise<string> {
  const out = path.join(dir, `restored-${Math.random().toString(36).slice(2)}.img`);
  await ok(['restore', '--repo', repo, '--set', set, '--generation', String(generation), '--disk', 'sda', '--to', `file:${out}`], env);
  try {
    return await sha256File(out);
  } finally {
    await fs.rm(out, { force: true });
  }
}

async function verifyClean(repo: string, env: NodeJS.ProcessEnv = owner): Promise<void> {
  const r = await cli(['verify', '--repo', repo, '--read-data', '--json'], env);
  assert.equal(r.code, 0, `verify exited ${r.code}: ${r.stderr}`);
  assert.deepEqual((JSON.parse(r.stdout) as { problems: unknown[] }).problems, []);
}

function assertWithin(iso: string, from: number, to: number, what: string): void {
  const t = Date.parse(iso);
  assert.ok(t >= from - SLACK && t <= to + SLACK, `${what}: ${iso} is not between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`);
}

/** Kills a backup at flush:packs-written: its packs stay, unreferenced. */
async function killedBackup(repo: string, image: string, env: NodeJS.ProcessEnv = owner): Promise<void> {
  const r = await startVmbkp(['backup', '--repo', repo, '--set', 'vm', '--mode', 'full', `sda=file:${img(image)}`],
    { env: { ...env, VMBKP_FAILPOINT: 'flush:packs-written' } }).done;
  assert.equal(r.signal, 'SIGKILL', `the failpoint killed vmbkp; it exited ${r.code}: ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------

describe('an object-locked repository (init --lock-days 1)', () => {
  let bucket: string;
  let prefix: string;
  let repo: string;
  /** Before init, before the first backup, after the second. */
  let tInit: number;
  let t0: number;
  let t1: number;

  before(async () => {
    bucket = `locked-${freshPrefix('bucket')}`;
    prefix = 'site-a';
    repo = s3Repo(server.info.endpoint, bucket, prefix);
    tInit = Date.now();
    const init = await json<{ objectLock?: unknown }>(['init', '--repo', repo, '--lock-days', '1']);
    assert.deepEqual(init.objectLock, { mode: 'compliance', days: 1 });
    t0 = Date.now();
    await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('a')}`]);
    await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('b')}`]);
    t1 = Date.now();
  });

  it('init made the bucket with object lock; the config records the lock; every object but locks is locked', async () => {
    const conf = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
    assert.equal(conf.ObjectLockConfiguration?.ObjectLockEnabled, 'Enabled');
    const backend = new S3Backend(repo, { credentials: { accessKeyId: server.info.accessKeyId, secretAccessKey: server.info.secretAccessKey } });
    try {
      const opened = await Repository.open(backend, { password: testPassword });
      assert.deepEqual(opened.config.objectLock, { mode: 'compliance', days: 1 });
    } finally {
      backend.destroy();
    }
    const keys = await keysUnder(s3, bucket, `${prefix}/`);
    assert.ok(keys.some((k) => k === `${prefix}/config`) && keys.some((k) => k.startsWith(`${prefix}/data/`)), keys.join(' '));
    assert.deepEqual(keys.filter((k) => k.startsWith(`${prefix}/locks/`)), [], 'every lock was released');
    for (const Key of keys) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key }));
      assert.equal(head.ObjectLockMode, 'COMPLIANCE', Key);
      assertWithin(head.ObjectLockRetainUntilDate!.toISOString(), tInit + DAY, t1 + DAY, Key);
    }
  });

  it("a pack's version cannot be deleted (403); a delete without a version only hides it behind a delete marker", async () => {
    const packs = (await versionList(s3, bucket, `${prefix}/data/`));
    assert.ok(packs.length >= 2 && packs.every((v) => !v.deleteMarker), JSON.stringify(packs));
    for (const v of packs) {
      await assert.rejects(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.key, VersionId: v.versionId })),
        (e) => httpStatus(e) === 403, `DeleteObject of ${v.key} version ${v.versionId}`);
    }
    // What S3 does without a version id: a delete marker (no lock stops that), the locked version stays.
    const victim = packs[0]!;
    const marker = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: victim.key }));
    assert.equal(marker.DeleteMarker, true);
    assert.ok(!(await keysUnder(s3, bucket, `${prefix}/data/`)).includes(victim.key), 'the marker hides the pack from a listing');
    const versions = await versionList(s3, bucket, victim.key);
    assert.deepEqual(versions.map((v) => [v.versionId === victim.versionId, v.deleteMarker]).sort(), [[false, true], [true, false]]);
    // Deleting the marker (its own version) brings the pack back whole.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: victim.key, VersionId: marker.VersionId! }));
    assert.deepEqual(await versionList(s3, bucket, `${prefix}/data/`), packs);
    await verifyClean(repo);
  });

  it('prune --keep-last 1 keeps the locked generation and says until when (text and --json)', async () => {
    const r = await ok(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1']);
    const m = /^locked vm generation 1 \(the object lock keeps it until (\S+)\)$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    assertWithin(m[1]!, t0 + DAY, t1 + DAY, 'until, as prune says it');
    assert.match(r.stdout, /^keep   vm generation 2 \(last\)$/m);
    assert.match(r.stdout, /^0 generations removed/m);
    const p = await json<PruneJson>(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1']);
    assert.deepEqual(p.remove, []);
    assert.deepEqual(p.keep.map((k) => k.generation), [2]);
    assert.deepEqual(p.locked.map((l) => l.generation), [1]);
    assertWithin(p.locked[0]!.until, t0 + DAY, t1 + DAY, 'until, in --json');
    assert.deepEqual(await generations(repo, 'vm'), [1, 2]);
  });

  it('gc keeps locked packs whole and reports them; verify passes and every generation restores', async () => {
    // Unreferenced data: the packs of a backup killed before it wrote its index and manifest.
    const t2 = Date.now();
    await killedBackup(repo, 'c');
    const t3 = Date.now();
    const before = await versionList(s3, bucket, `${prefix}/data/`);
    assert.ok(before.length > (await versionList(s3, bucket, `${prefix}/index/`)).length, 'the killed backup left packs');

    const r = await ok(['gc', '--repo', repo]);
    const m = /^(\d+) packs \(.+\) holding unreferenced data stay locked; all of them can go after (\S+)$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    assertWithin(m[2]!, t2 + DAY, t3 + DAY, 'until, as gc says it');
    const g = await json<GcJson>(['gc', '--repo', repo]);
    assert.equal(g.packsRemoved, 0);
    assert.equal(g.bytesFreed, 0);
    assert.ok(g.locked && g.locked.packs >= 1 && g.locked.bytes > 0, JSON.stringify(g));
    assert.equal(g.locked.packs, Number(m[1]));
    assertWithin(g.locked.until, t2 + DAY, t3 + DAY, 'until, in --json');
    assert.deepEqual(await versionList(s3, bucket, `${prefix}/data/`), before, 'every pack version is still there');

    await verifyClean(repo);
    assert.equal(await restoredSha(repo, 'vm', 1), sha.get('a'));
    assert.equal(await restoredSha(repo, 'vm', 2), sha.get('b'));
  });
});

// ---------------------------------------------------------------------------------------------

describe('where an object lock cannot be had', () => {
  it('init --lock-days on an existing bucket without object lock: exit 2, one line naming the bucket, nothing written', async () => {
    const bucket = await s3Bucket(s3, 'plain');
    const r = await cli(['init', '--repo', s3Repo(server.info.endpoint, bucket, 'site-a'), '--lock-days', '1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: bucket ${bucket} .*has no object lock`));
    assert.deepEqual(await objectList(s3, bucket), []);
  });

  it('init --lock-days on a local directory: exit 2, one line', async () => {
    const repo = path.join(dir, 'local-repo');
    const r = await cli(['init', '--repo', repo, '--lock-days', '1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: an object lock needs a repository on S3/);
    assert.deepEqual(await fs.readdir(repo).catch(() => []), [], 'no repository was made');
  });
});

// ---------------------------------------------------------------------------------------------

/** The bucket policy README.md prints for append-only credentials, for this bucket, prefix and users. */
async function readmePolicy(bucket: string, prefix: string, user: string, bucketOwner: string): Promise<string> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Backups that cannot be deleted'));
  const block = /```json\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'README.md shows the policy under "Backups that cannot be deleted"');
  const policy = block[1]!
    .replaceAll('arn:aws:s3:::vm-backups/site-a/', `arn:aws:s3:::${bucket}/${prefix}/`)
    .replaceAll('arn:aws:s3:::vm-backups', `arn:aws:s3:::${bucket}`)
    .replaceAll('arn:aws:iam:::user/backup"', `arn:aws:iam:::user/${user}"`)
    .replaceAll('arn:aws:iam:::user/owner"', `arn:aws:iam:::user/${bucketOwner}"`);
  assert.doesNotMatch(policy, /vm-backups|site-a|user\/backup"|user\/owner"/, 'every name was replaced');
  JSON.parse(policy);
  return policy;
}

describe('append-only credentials under the README policy', () => {
  for (const locked of [false, true]) {
    it(`${locked ? 'an object-locked bucket' : 'a bucket without object lock'}: backup, restore and verify work; prune and gc stop with exit 7 and change nothing; a pack cannot be deleted`, async () => {
      // The owner makes the bucket and the repository, then lets the new user in.
      const prefix = 'offsite';
      const bucket = locked ? `locked-${freshPrefix('bucket')}` : await s3Bucket(s3, 'append');
      const repo = s3Repo(server.info.endpoint, bucket, prefix);
      await ok(['init', '--repo', repo, ...(locked ? ['--lock-days', '1'] : [])]);
      const user = await server.createUser(`backup-${freshPrefix('host')}`);
      const ownerId = (await s3.send(new ListBucketsCommand({}))).Owner?.ID;
      assert.ok(ownerId);
      await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: await readmePolicy(bucket, prefix, user.user, ownerId) }));
      const appender = s3Env(server, user);
      const theirs = server.client(user);

      await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('a')}`], appender);
      await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('b')}`], appender);
      assert.deepEqual(await keysUnder(s3, bucket, `${prefix}/locks/`), [], 'its locks were taken and released');
      assert.equal(await restoredSha(repo, 'vm', 1, appender), sha.get('a'));
      assert.equal(await restoredSha(repo, 'vm', 2, appender), sha.get('b'));
      await verifyClean(repo, appender);

      const refusedDelete = new RegExp(`^vmbkp: error: deleting from ${repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} failed: AccessDenied \\(HTTP 403\\) \\(the credentials lack the s3:DeleteObject permission`);
      const everything = () => (locked ? versionList(s3, bucket) : objectList(s3, bucket));
      const before = await everything();
      const p = await cli(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1'], appender);
      if (locked) {
        // Every generation prune would remove is locked: it removes nothing, so it deletes nothing and needs no right to.
        assert.equal(p.code, 0, p.stderr);
        assert.match(p.stdout, /^locked vm generation 1 \(the object lock keeps it until /m);
      } else {
        assert.equal(p.code, 7, `prune: exit ${p.code}: ${p.stderr}`);
        assert.match(oneLine(p.stderr), refusedDelete, 'refused by the check before anything is removed');
      }
      assert.deepEqual(await everything(), before, 'prune removed nothing');
      const g = await cli(['gc', '--repo', repo], appender);
      assert.equal(g.code, 7, `gc: exit ${g.code}: ${g.stderr}`);
      assert.match(oneLine(g.stderr), refusedDelete, 'refused by the check before anything is written or removed');
      assert.deepEqual(await everything(), before, 'gc wrote and removed nothing');
      assert.deepEqual(await generations(repo, 'vm', appender), [1, 2]);

      // The user's own S3 calls: no pack can be deleted, with or without a version id.
      const pack = (await versionList(s3, bucket, `${prefix}/data/`))[0]!;
      await assert.rejects(theirs.send(new DeleteObjectCommand({ Bucket: bucket, Key: pack.key })), (e) => httpStatus(e) === 403);
      await assert.rejects(theirs.send(new DeleteObjectCommand({ Bucket: bucket, Key: pack.key, VersionId: pack.versionId })), (e) => httpStatus(e) === 403);
      assert.deepEqual(await everything(), before);

      // The owner can (the policy's last statement: on RGW it could not even read what the user wrote).
      const pruned = await json<PruneJson>(['prune', '--repo', repo, '--set', 'vm', '--keep-last', '1']);
      assert.deepEqual(pruned.remove, locked ? [] : [1]);
      await ok(['gc', '--repo', repo]);
      await verifyClean(repo);
      assert.equal(await restoredSha(repo, 'vm', 2), sha.get('b'));

      // What a policy cannot stop: the user replacing an object (vmbkp's puts are If-None-Match and never do).
      const live = (await versionList(s3, bucket, `${prefix}/data/`)).filter((v) => !v.deleteMarker);
      const target = live[0]!;
      await theirs.send(new PutObjectCommand({ Bucket: bucket, Key: target.key, Body: Buffer.alloc(1024, 0x55) }));
      const damaged = await cli(['verify', '--repo', repo, '--read-data']);
      assert.equal(damaged.code, 5, `verify --read-data finds the replaced pack: ${damaged.stdout}${damaged.stderr}`);
      if (locked) {
        // The replaced version stays, locked; removing the replacement (unlocked) repairs the repository.
        const versions = await versionList(s3, bucket, target.key);
        assert.equal(versions.length, 2);
        await assert.rejects(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: target.key, VersionId: target.versionId })), (e) => httpStatus(e) === 403);
        const replacement = versions.find((v) => v.versionId !== target.versionId)!;
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: target.key, VersionId: replacement.versionId }));
        await verifyClean(repo);
      }
    });
  }
});
