/**
 * S3Backend: a repository in an S3 bucket (AWS, Ceph RGW, any S3 with path-style
 * addressing). Puts are single PutObject requests with `If-None-Match: *`, which makes them
 * write-once on the server; every request is retried with backoff on throttling, server
 * errors and broken connections, and the retries are counted.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CreateBucketCommand, DeleteObjectCommand, GetBucketVersioningCommand, GetObjectCommand,
  GetObjectLockConfigurationCommand, HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { AlreadyExistsError, AuthError, IoError, NotFoundError, UsageError, describeCause } from '../errors.js';
import { type ByteRange, type ListedObject, type ObjectLockPolicy, type ObjectStat, type PutOptions, type StorageBackend, type StorageCounters, checkObjectName } from './backend.js';
import { type S3Location, parseS3Location } from './s3-location.js';
import { RetryCounter, type RetryPolicy, withRetries } from './retry.js';
import { describeS3Error, s3ErrorCode, s3Retryable } from './s3-errors.js';

export interface S3Options {
  /** PEM file of the CA that signed the server's certificate (a private CA). */
  readonly caFile?: string;
  /** Region to sign for; S3-compatible servers mostly accept any. */
  readonly region?: string;
  /** Connections at most, and so requests in flight. */
  readonly maxSockets?: number;
  readonly retry?: RetryPolicy;
  /** Credentials; by default the SDK's chain (environment, shared profiles, instance roles). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export class S3Backend implements StorageBackend {
  readonly location: string;
  readonly where: S3Location;
  /** Every put waits a round trip and the server's write: four packs (64 MiB) in flight keep the link busy. */
  readonly putsInFlight = 4;
  private readonly client: S3Client;
  private readonly retries = new RetryCounter();
  private readonly policy: RetryPolicy | undefined;
  private objectLock: ObjectLockPolicy | undefined;
  /** Whether the bucket keeps versions (object lock needs it): then removing an object means removing its versions. */
  private versioned: Promise<boolean> | undefined;

  constructor(location: string, options: S3Options = {}) {
    this.where = parseS3Location(location);
    this.location = this.where.display;
    this.policy = options.retry;
    // The SDK warns on every Node before 22 at its first request. vmbkp supports Node 20 and
    // pins an SDK release that does too (package.json): the warning would only be noise.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    const ca = options.caFile === undefined ? undefined : readCa(options.caFile);
    const maxSockets = options.maxSockets ?? 16;
    this.client = new S3Client({
      endpoint: this.where.endpoint,
      forcePathStyle: true,
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // We retry ourselves, to count the retries and to tell a retried put's own success from a conflict.
      maxAttempts: 1,
      // Checksums on every request are newer than many S3-compatible servers (RGW 16 refuses streamed ones).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets, ...(ca ? { ca } : {}) }),
      }),
    });
  }

  private key(name: string): string {
    checkObjectName(name);
    return this.where.prefix + name;
  }

  private retry<T>(op: (attempt: number) => Promise<T>): Promise<T> {
    return withRetries(op, { retryable: s3Retryable, counter: this.retries, ...(this.policy ? { policy: this.policy } : {}) });
  }

  /** `permission`: what a refusal (403) most likely lacks, for the message. */
  private fail(operation: string, err: unknown, permission?: string): Error {
    const message = `${operation} ${this.location} failed: ${describeS3Error(err)}`;
    const code = s3ErrorCode(err);
    if (code === 'CredentialsProviderError') {
      return new AuthError(`${operation} ${this.location} failed: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`, { cause: err });
    }
    if (code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'HTTP 403') {
      const lacks = permission && code !== 'InvalidAccessKeyId' && code !== 'SignatureDoesNotMatch'
        ? ` (the credentials lack the ${permission} permission${permission === 's3:DeleteObject' ? ', or the object is locked' : ''})` : '';
      return new AuthError(message + lacks, { cause: err });
    }
    return new IoError(message, { cause: err });
  }

  counters(): StorageCounters {
    return { retries: this.retries.count, retriesByCause: this.retries.causes() };
  }

  /**
   * Creates the bucket when it is missing (vmbkp init), with object lock when asked for. An
   * existing bucket must have object lock enabled already for a locked repository: it can
   * only be turned on when a bucket is created.
   */
  async createBucket(options: { objectLock?: boolean } = {}): Promise<void> {
    const Bucket = this.where.bucket;
    let exists = true;
    try {
      await this.retry(() => this.client.send(new HeadBucketCommand({ Bucket })));
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code !== 'NotFound' && code !== 'NoSuchBucket' && code !== 'HTTP 404') throw this.fail(`looking up bucket ${Bucket} of`, err);
      exists = false;
    }
    if (!exists) {
      try {
        await this.retry(() => this.client.send(new CreateBucketCommand({ Bucket, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) })));
      } catch (err) {
        if (s3ErrorCode(err) !== 'BucketAlreadyOwnedByYou') throw this.fail(`creating bucket ${Bucket} for`, err);
      }
    }
    if (options.objectLock) {
      let enabled = false;
      try {
        const res = await this.retry(() => this.client.send(new GetObjectLockConfigurationCommand({ Bucket })));
        enabled = res.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
      } catch (err) {
        const code = s3ErrorCode(err);
        if (code !== 'ObjectLockConfigurationNotFoundError' && code !== 'HTTP 404') throw this.fail(`reading the object lock of bucket ${Bucket} of`, err);
      }
      if (!enabled) throw new UsageError(`bucket ${Bucket} of ${this.location} has no object lock, and it can only be enabled when a bucket is created: give a new bucket`);
    }
  }

  lockObjects(policy: ObjectLockPolicy): void {
    this.objectLock = policy;
  }

  /** The lock headers for an object: none for locks, which are removed when released. */
  private lockHeaders(name: string): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
    if (!this.objectLock || name.startsWith('locks/')) return {};
    return {
      ObjectLockMode: this.objectLock.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE',
      ObjectLockRetainUntilDate: new Date(Date.now() + this.objectLock.days * 86_400_000),
    };
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[], options: PutOptions = {}): Promise<void> {
    const Key = this.key(name);
    const sha256 = options.sha256;
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new TypeError(`put ${name}: not a SHA-256: ${JSON.stringify(sha256)}`);
    // One piece is sent as it is, not copied (a pack is 16 MiB, in one piece of its builder's
    // buffer): the caller leaves it alone until put settles, and every try sends it again.
    // Several pieces are joined (a stream of them would make the SDK warn on every failure).
    const body = data instanceof Uint8Array ? data : data.length === 1 ? data[0]! : Buffer.concat(data as Uint8Array[]);
    let sent = false;
    try {
      // A versioned bucket (object lock makes one) takes a put of an existing name as a new
      // version, If-None-Match or not (RGW 16; docs/s3-server.md): look first. Two writers
      // can still both pass the look; the generation commit lock covers the names that matter.
      if ((await this.isVersioned()) && (await this.stat(name))) {
        throw Object.assign(new Error('the name exists (looked up first: the bucket keeps versions)'), { name: 'PreconditionFailed' });
      }
      await this.retry(async () => {
        try {
          const command = new PutObjectCommand({
            Bucket: this.where.bucket, Key, Body: body, ContentLength: body.length, IfNoneMatch: '*', ...this.lockHeaders(name),
          });
          // The payload's SHA-256 signs the request: given, the SDK does not hash 16 MiB again
          // on the main thread, and the server still checks it against what arrives.
          if (sha256 !== undefined) {
            command.middlewareStack.add((next) => (args) => {
              const headers = (args.request as { headers?: Record<string, string> }).headers;
              if (headers) headers['x-amz-content-sha256'] = sha256;
              return next(args);
            }, { step: 'build', name: 'vmbkpKnownPayloadHash' });
          }
          await this.client.send(command);
        } catch (err) {
          // 412: the name exists. If an earlier try of ours was cut off after the server
          // stored it, the object is ours: compare before calling it someone else's.
          if (s3ErrorCode(err) === 'PreconditionFailed' && sent && (await this.sameContent(name, body))) return;
          sent = true;
          throw err;
        }
      });
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code === 'PreconditionFailed') throw new AlreadyExistsError(`storing ${name} in ${this.location} failed: it exists already`, { cause: err });
      throw this.fail(`storing ${name} in`, err, 's3:PutObject');
    }
  }

  private async sameContent(name: string, body: Uint8Array): Promise<boolean> {
    try {
      return (await this.get(name)).equals(body);
    } catch {
      return false;
    }
  }

  async get(name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    const Key = this.key(name);
    if (range && range.length === 0) return Buffer.alloc(0);
    try {
      return await this.retry(async () => {
        const res = await this.client.send(new GetObjectCommand({
          Bucket: this.where.bucket, Key, ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
        }));
        const wanted = range ? range.length : Number(res.ContentLength ?? 0);
        const buf = range && into ? into.subarray(0, range.length) : Buffer.allocUnsafe(wanted);
        const got = await readInto(res.Body as Readable, buf);
        if (!range) return got === wanted ? buf : buf.subarray(0, got);
        if (got !== range.length) throw new ShortRead(range, got);
        return buf;
      });
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code === 'NoSuchKey' || code === 'NoSuchBucket' || code === 'HTTP 404') {
        throw new NotFoundError(`reading ${name} from ${this.location} failed: no such object`, { cause: err });
      }
      if (err instanceof ShortRead || code === 'InvalidRange') {
        const end = err instanceof ShortRead ? `ends after ${range!.offset + err.got} bytes` : 'is shorter';
        throw new IoError(`reading ${name} from ${this.location} at offset ${range!.offset} failed: object ${end}, ${range!.length} bytes were wanted`, { cause: err });
      }
      throw this.fail(`reading ${name} from`, err, 's3:GetObject');
    }
  }

  async stat(name: string): Promise<ObjectStat | undefined> {
    const Key = this.key(name);
    try {
      const res = await this.retry(() => this.client.send(new HeadObjectCommand({ Bucket: this.where.bucket, Key })));
      const lockedUntil = res.ObjectLockRetainUntilDate?.getTime();
      return {
        size: Number(res.ContentLength ?? 0), mtimeMs: res.LastModified?.getTime() ?? 0,
        ...(lockedUntil !== undefined && lockedUntil > Date.now() ? { lockedUntilMs: lockedUntil } : {}),
      };
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code === 'NotFound' || code === 'NoSuchKey' || code === 'HTTP 404') return undefined;
      throw this.fail(`looking up ${name} in`, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listSizes(prefix)).map((o) => o.name);
  }

  /** ListObjectsV2 answers each key's size: a sized listing costs what a plain one does. */
  async listSizes(prefix: string): Promise<ListedObject[]> {
    const folder = prefix.replace(/\/+$/, '');
    if (folder !== '') checkObjectName(folder);
    const Prefix = this.where.prefix + (folder === '' ? '' : `${folder}/`);
    const out: ListedObject[] = [];
    let ContinuationToken: string | undefined;
    try {
      do {
        const res = await this.retry(() => this.client.send(new ListObjectsV2Command({
          Bucket: this.where.bucket, Prefix, ...(ContinuationToken ? { ContinuationToken } : {}),
        })));
        for (const o of res.Contents ?? []) if (o.Key) out.push({ name: o.Key.slice(this.where.prefix.length), size: Number(o.Size ?? 0) });
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (err) {
      throw this.fail(`listing ${prefix || '/'} in`, err, 's3:ListBucket');
    }
    return out;
  }

  /**
   * Removes an object. In a versioned bucket a plain delete only hides the object behind a
   * delete marker and frees nothing, so every version of the name goes (a locked one
   * refuses, and the error says so).
   */
  async remove(name: string): Promise<void> {
    const Key = this.key(name);
    const Bucket = this.where.bucket;
    let versioned: boolean;
    try {
      versioned = await this.isVersioned();
    } catch (err) {
      throw this.fail(`removing ${name} from`, err);
    }
    let versions: string[] | undefined;
    if (versioned) {
      try {
        versions = await this.versionsOf(Key);
      } catch (err) {
        throw this.fail(`listing the versions of ${name} in`, err, 's3:ListBucketVersions');
      }
    }
    try {
      if (!versions) {
        await this.retry(() => this.client.send(new DeleteObjectCommand({ Bucket, Key })));
        return;
      }
      for (const VersionId of versions) {
        await this.retry(() => this.client.send(new DeleteObjectCommand({ Bucket, Key, VersionId })));
      }
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code === 'NoSuchKey' || code === 'NoSuchVersion' || code === 'HTTP 404') return;
      throw this.fail(`removing ${name} from`, err, 's3:DeleteObject');
    }
  }

  private isVersioned(): Promise<boolean> {
    this.versioned ??= this.retry(() => this.client.send(new GetBucketVersioningCommand({ Bucket: this.where.bucket })))
      .then((res) => res.Status === 'Enabled' || res.Status === 'Suspended' || this.objectLock !== undefined)
      .catch((err: unknown) => {
        // Credentials that may not read the bucket's settings: a locked repository's bucket keeps versions, others are taken not to.
        if (s3ErrorCode(err) === 'AccessDenied') return this.objectLock !== undefined;
        this.versioned = undefined;
        throw err;
      });
    return this.versioned;
  }

  /** Every version and delete marker of exactly this key. */
  private async versionsOf(Key: string): Promise<string[]> {
    const out: string[] = [];
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    do {
      const res = await this.retry(() => this.client.send(new ListObjectVersionsCommand({
        Bucket: this.where.bucket, Prefix: Key, ...(KeyMarker ? { KeyMarker } : {}), ...(VersionIdMarker ? { VersionIdMarker } : {}),
      })));
      for (const v of [...(res.Versions ?? []), ...(res.DeleteMarkers ?? [])]) if (v.Key === Key && v.VersionId) out.push(v.VersionId);
      KeyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
      VersionIdMarker = res.IsTruncated ? res.NextVersionIdMarker : undefined;
    } while (KeyMarker);
    return out;
  }

  /**
   * Fails, naming the permission, when these credentials may not delete: a delete of a name
   * that does not exist is checked against the policy like any other, and changes nothing
   * (in a versioned bucket the delete marker it leaves is removed again).
   */
  async checkDeletable(): Promise<void> {
    const name = 'data/00/vmbkp-delete-check';
    const Key = this.key(name);
    const Bucket = this.where.bucket;
    try {
      const res = await this.retry(() => this.client.send(new DeleteObjectCommand({ Bucket, Key })));
      if (res.DeleteMarker && res.VersionId) {
        const VersionId = res.VersionId;
        await this.retry(() => this.client.send(new DeleteObjectCommand({ Bucket, Key, VersionId })));
      }
    } catch (err) {
      throw this.fail(`deleting from`, err, 's3:DeleteObject');
    }
  }

  /** Puts are single requests; what an interrupted multipart upload (another tool's, or a future one) left is aborted. */
  async sweep(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    try {
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        const res = await this.retry(() => this.client.send(new ListMultipartUploadsCommand({
          Bucket: this.where.bucket, Prefix: this.where.prefix, ...(KeyMarker ? { KeyMarker } : {}), ...(UploadIdMarker ? { UploadIdMarker } : {}),
        })));
        for (const u of res.Uploads ?? []) {
          if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? 0) > cutoff) continue;
          const { Key, UploadId } = u;
          await this.retry(() => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key, UploadId })));
          removed++;
        }
        KeyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
        UploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined;
      } while (KeyMarker);
    } catch (err) {
      throw this.fail('removing interrupted uploads in', err);
    }
    return removed;
  }

  /** Closes the connections, so a process can exit. */
  destroy(): void {
    this.client.destroy();
  }
}

class ShortRead extends Error {
  constructor(readonly range: ByteRange, readonly got: number) {
    super(`short read: ${got} of ${range.length} bytes`);
  }
}

/**
 * Reads a response body into buf; returns the bytes read (never more than buf holds: the
 * rest is an error). buf is often a worker slot, in a SharedArrayBuffer: Buffer#copy into
 * shared memory runs V8's relaxed-atomic loop (relaxed_memmove: 5–6 % of an S3 restore's
 * CPU in perf), while Buffer#fill with a value as long as the range is one memcpy.
 */
async function readInto(body: Readable, buf: Buffer): Promise<number> {
  let at = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (at + chunk.length > buf.length) {
      body.destroy();
      throw new IoError(`the server sent more than the ${buf.length} bytes it announced`);
    }
    if (chunk.length > 0) buf.fill(chunk, at, at + chunk.length);
    at += chunk.length;
  }
  return at;
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new IoError(`reading the S3 CA file ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}
