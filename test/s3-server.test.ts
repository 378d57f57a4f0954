/**
 * The S3 test server (scripts/s3.mjs: Ceph's RADOS Gateway on memstore) against the AWS SDK:
 * the S3 calls vmbkp relies on, a gateway crash and restart, a second user, two servers at
 * once, and that nothing is left behind when it stops or is killed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, it } from 'node:test';
import {
  DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutBucketPolicyCommand,
  PutBucketVersioningCommand, PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { processAlive, type S3Server, s3Bucket, startS3 } from './s3-server.js';

let server: S3Server;
let s3: S3Client;
before(async () => {
  server = await startS3();
  s3 = server.client();
});
after(() => server.stop());

/** The HTTP status of a failed S3 call (or undefined when it did not fail at the HTTP level). */
function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

async function text(client: S3Client, Bucket: string, Key: string, Range?: string): Promise<string> {
  const r = await client.send(new GetObjectCommand({ Bucket, Key, ...(Range ? { Range } : {}) }));
  return r.Body!.transformToString();
}

async function waitUntil(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('describes itself: a path-style endpoint on 127.0.0.1, its pids and its directory', () => {
  assert.match(server.info.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(server.info.forcePathStyle, true);
  assert.ok(processAlive(server.info.pid) && processAlive(server.info.rgwPid));
  assert.ok(existsSync(server.info.cephConf));
  assert.equal(server.daemonPids().length, 3, 'monitor, OSD and radosgw');
});

it('answers PutObject, ranged GetObject, paginated ListObjectsV2 and DeleteObject', async () => {
  const bucket = await s3Bucket(s3);
  const body = '0123456789abcdefghijklmnopqrstuvwxyz';
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/whole', Body: body }));
  assert.equal(await text(s3, bucket, 'dir/whole'), body);
  const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/whole', Range: 'bytes=10-19' }));
  assert.equal(ranged.ContentRange, `bytes 10-19/${body.length}`);
  assert.equal(await ranged.Body!.transformToString(), body.slice(10, 20));

  const keys = Array.from({ length: 7 }, (_, i) => `page/${i}`);
  await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }))));
  const listed: string[] = [];
  const pages: number[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'page/', MaxKeys: 3, ContinuationToken: token }));
    pages.push(page.KeyCount ?? 0);
    listed.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  assert.deepEqual(pages, [3, 3, 1]);
  assert.deepEqual(listed, keys);

  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'dir/whole' }));
  await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'dir/whole' })), (e) => status(e) === 404);
});

it('If-None-Match: * creates at most once in an unversioned bucket, but a versioned bucket ignores it', async () => {
  const plain = await s3Bucket(s3);
  await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: 'first', IfNoneMatch: '*' }));
  await assert.rejects(s3.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: 'second', IfNoneMatch: '*' })), (e) => status(e) === 412);
  const racers = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
    s3.send(new PutObjectCommand({ Bucket: plain, Key: 'race', Body: `racer ${i}`, IfNoneMatch: '*' }))));
  assert.equal(racers.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one of eight concurrent creates wins');
  assert.equal(await text(s3, plain, 'k'), 'first');

  // Ceph 16: with versioning enabled the condition is not checked and a second version is written.
  const versioned = await s3Bucket(s3);
  await s3.send(new PutBucketVersioningCommand({ Bucket: versioned, VersioningConfiguration: { Status: 'Enabled' } }));
  await s3.send(new PutObjectCommand({ Bucket: versioned, Key: 'k', Body: 'first', IfNoneMatch: '*' }));
  await s3.send(new PutObjectCommand({ Bucket: versioned, Key: 'k', Body: 'second', IfNoneMatch: '*' }));
  assert.equal(await text(s3, versioned, 'k'), 'second');
});

it('Object Lock: a retained version cannot be deleted (COMPLIANCE; GOVERNANCE without bypass)', async () => {
  const bucket = await s3Bucket(s3, 'locked', { ObjectLockEnabledForBucket: true });
  const until = new Date(Date.now() + 3600_000);
  for (const mode of ['COMPLIANCE', 'GOVERNANCE'] as const) {
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: mode, Body: 'kept', ObjectLockMode: mode, ObjectLockRetainUntilDate: until }));
    assert.ok(put.VersionId);
    await assert.rejects(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: mode, VersionId: put.VersionId })), (e) => status(e) === 403);
    assert.equal(await text(s3, bucket, mode), 'kept');
  }
  const gov = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'GOVERNANCE' }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'GOVERNANCE', VersionId: gov.VersionId, BypassGovernanceRetention: true }));
});

it('create-user gives a second user whose rights a bucket policy sets: put, get and list, never delete', async () => {
  const bucket = await s3Bucket(s3);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'by-owner', Body: 'x' }));
  const user = await server.createUser('appender');
  assert.equal(user.user, 'appender');
  assert.notEqual(user.accessKeyId, server.info.accessKeyId);
  const other = server.client(user);
  assert.deepEqual((await other.send(new ListBucketsCommand({}))).Buckets ?? [], [], 'the new user owns no bucket');
  await assert.rejects(other.send(new GetObjectCommand({ Bucket: bucket, Key: 'by-owner' })), (e) => status(e) === 403);

  const principal = { AWS: ['arn:aws:iam:::user/appender'] };
  await s3.send(new PutBucketPolicyCommand({
    Bucket: bucket,
    Policy: JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: principal, Action: ['s3:PutObject', 's3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] },
        { Effect: 'Deny', Principal: principal, Action: ['s3:DeleteObject'], Resource: [`arn:aws:s3:::${bucket}/*`] },
      ],
    }),
  }));
  await other.send(new PutObjectCommand({ Bucket: bucket, Key: 'by-appender', Body: 'y' }));
  assert.equal(await text(other, bucket, 'by-owner'), 'x');
  const keys = (await other.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents?.map((o) => o.Key);
  assert.deepEqual(keys, ['by-appender', 'by-owner']);
  await assert.rejects(other.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'by-owner' })), (e) => status(e) === 403);
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'by-appender' }));
});

it('stop-rgw makes requests fail to connect; start-rgw serves the same endpoint with the data intact', async () => {
  const bucket = await s3Bucket(s3);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'survivor', Body: 'still here' }));
  const before = server.rgwPid;
  await server.stopRgw();
  assert.equal(processAlive(before), false);
  const once = server.client(undefined, { maxAttempts: 1 });
  await assert.rejects(once.send(new GetObjectCommand({ Bucket: bucket, Key: 'survivor' })), (e: Error & { code?: string }) => e.code === 'ECONNREFUSED');

  const after = await server.startRgw();
  assert.notEqual(after, before);
  assert.equal(await text(s3, bucket, 'survivor'), 'still here');
});

it('two servers run at once without sharing ports, data or directories; SIGKILL of the script takes its daemons along', async () => {
  const second = await startS3();
  try {
    assert.notEqual(second.info.endpoint, server.info.endpoint);
    assert.notEqual(second.info.dir, server.info.dir);
    const s3b = second.client();
    const bucket = await s3Bucket(s3b, 'second');
    await s3b.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'second' }));
    const firstBuckets = (await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name);
    assert.ok(!firstBuckets?.includes(bucket), 'the first server does not see the second one\'s bucket');

    // The watchdog (a detached shell reading the script's pipe) kills the daemons and removes the directory.
    const pids = second.daemonPids();
    process.kill(second.info.pid, 'SIGKILL');
    await waitUntil('the daemons are gone', () => pids.every((p) => !processAlive(p)));
    await waitUntil('the directory is gone', () => !existsSync(second.info.dir));
  } finally {
    await second.stop();
  }
  const bucket = await s3Bucket(s3);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'first' }));
  assert.equal(await text(s3, bucket, 'k'), 'first', 'the first server is unaffected');
});

it('stop() ends every process the script started and removes its directory', async () => {
  const pids = [server.info.pid, ...server.daemonPids()];
  assert.ok(pids.every(processAlive));
  await server.stop();
  await waitUntil('every process is gone', () => pids.every((p) => !processAlive(p)));
  assert.equal(existsSync(server.info.dir), false);
});
