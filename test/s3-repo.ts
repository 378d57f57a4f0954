/**
 * What the S3 acceptance suites share: repositories on the test server (test/s3-server.ts)
 * named as users name them, the environment that gives a spawned vmbkp its keys, and looks
 * at a bucket from outside vmbkp.
 */
import { randomBytes } from 'node:crypto';
import { ListObjectVersionsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3Credentials, S3Server } from './s3-server.js';

// The SDK warns at its first request on Node 20, which vmbkp supports (src/storage/s3.ts says
// why): the tests' own clients would print it into the test report.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** `--repo` of a repository in `bucket` (under `prefix` when given) on the server at `endpoint`. */
export function s3Repo(endpoint: string, bucket: string, prefix?: string): string {
  return `s3:${endpoint}/${bucket}${prefix ? `/${prefix}` : ''}`;
}

/** A fresh prefix, for a repository of its own in a shared bucket. */
export function freshPrefix(what = 'repo'): string {
  return `${what}-${randomBytes(4).toString('hex')}`;
}

/** The environment of a spawned vmbkp: the server's first user (the owner), or `creds`. */
export function s3Env(server: S3Server, creds?: S3Credentials): NodeJS.ProcessEnv {
  const { accessKeyId, secretAccessKey } = creds ?? server.info;
  return { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: server.info.region };
}

/** The HTTP status of a failed S3 call. */
export function httpStatus(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** Every object under a prefix ("" for the whole bucket) as "KEY SIZE ETAG", sorted: equal lists mean nothing was written, replaced or removed. */
export async function objectList(client: S3Client, Bucket: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const res = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ...(ContinuationToken ? { ContinuationToken } : {}) }));
    for (const o of res.Contents ?? []) out.push(`${o.Key} ${o.Size} ${o.ETag}`);
    ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return out.sort();
}

/** The keys under a prefix. */
export async function keysUnder(client: S3Client, Bucket: string, prefix: string): Promise<string[]> {
  return (await objectList(client, Bucket, prefix)).map((l) => l.split(' ')[0]!);
}

export interface ObjectVersion { key: string; versionId: string; deleteMarker: boolean }

/** Every version and delete marker under a prefix, sorted by key and version. */
export async function versionList(client: S3Client, Bucket: string, prefix = ''): Promise<ObjectVersion[]> {
  const out: ObjectVersion[] = [];
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  do {
    const res = await client.send(new ListObjectVersionsCommand({
      Bucket, Prefix: prefix, ...(KeyMarker ? { KeyMarker } : {}), ...(VersionIdMarker ? { VersionIdMarker } : {}),
    }));
    for (const v of res.Versions ?? []) out.push({ key: v.Key!, versionId: v.VersionId!, deleteMarker: false });
    for (const v of res.DeleteMarkers ?? []) out.push({ key: v.Key!, versionId: v.VersionId!, deleteMarker: true });
    KeyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
    VersionIdMarker = res.IsTruncated ? res.NextVersionIdMarker : undefined;
  } while (KeyMarker);
  return out.sort((a, b) => (a.key === b.key ? (a.versionId < b.versionId ? -1 : 1) : a.key < b.key ? -1 : 1));
}
