/**
 * The S3 test server (Ceph's RADOS Gateway, scripts/s3.mjs) as a test fixture: start one
 * per suite, crash and restart its gateway, add users, get clients configured for it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, type CreateBucketCommandInput, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { ROOT } from './helpers.js';

/** The JSON line scripts/s3.mjs prints once RGW answers. */
export interface S3Info {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: true;
  /** The script's pid. */
  pid: number;
  rgwPid: number;
  /** The script's temporary directory: ceph.conf, logs, admin sockets; gone after stop(). */
  dir: string;
  cephConf: string;
}

export interface S3Credentials { accessKeyId: string; secretAccessKey: string }
export interface S3User extends S3Credentials { user: string }

type Answer = Record<string, unknown>;

export class S3Server {
  /** Resolvers of the commands sent and not yet answered: the script answers in order. */
  private readonly pending: { resolve: (a: Answer) => void; reject: (e: Error) => void }[] = [];
  private readonly clients: S3Client[] = [];
  private stderr = '';
  /** Whether the script has exited. */
  private gone = false;
  rgwPid: number;

  private constructor(readonly info: S3Info, private readonly child: ChildProcess, private readonly exited: Promise<void>) {
    this.rgwPid = info.rgwPid;
  }

  static async start(opts: { size?: number } = {}): Promise<S3Server> {
    const args = [path.join(ROOT, 'scripts/s3.mjs'), ...(opts.size ? ['--size', String(opts.size)] : [])];
    // stdin stays open: its end tells the script to stop, so a test process that dies takes it along.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => { /* the script is gone: the exit handler reports it */ });
    let stderr = '';
    const onStderr = (d: Buffer): void => { stderr = (stderr + d).slice(-8000); };
    child.stderr!.on('data', onStderr);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code, signal) => reject(new Error(`s3.mjs exited (${signal ?? code}) before describing itself: ${stderr}`)));
    });
    const server = new S3Server(JSON.parse(first) as S3Info, child, exited);
    child.stderr!.off('data', onStderr);
    server.stderr = stderr;
    child.stderr!.on('data', (d: Buffer) => { server.stderr = (server.stderr + d).slice(-8000); });
    lines.on('line', (line) => server.pending.shift()?.resolve(JSON.parse(line) as Answer));
    child.once('exit', (code, signal) => {
      server.gone = true;
      for (const p of server.pending.splice(0)) p.reject(new Error(`s3.mjs exited (${signal ?? code}): ${server.stderr}`));
    });
    return server;
  }

  /** Sends one stdin command; resolves with its answer, rejects on {"error": …}. */
  private async command(line: string): Promise<Answer> {
    if (this.gone) throw new Error(`s3.mjs is not running; cannot ${line}`);
    const answer = await new Promise<Answer>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin!.write(`${line}\n`);
    });
    if (typeof answer['error'] === 'string') throw new Error(`s3.mjs ${line}: ${answer['error']}`);
    return answer;
  }

  /** Kills radosgw as a crash would (SIGKILL); resolves once it is gone. */
  async stopRgw(): Promise<void> {
    await this.command('stop-rgw');
  }

  /** Starts radosgw again on the same endpoint; resolves once it answers HTTP. */
  async startRgw(): Promise<number> {
    this.rgwPid = (await this.command('start-rgw'))['rgwPid'] as number;
    return this.rgwPid;
  }

  /** A second S3 user, with keys radosgw-admin generated. */
  async createUser(name: string): Promise<S3User> {
    return (await this.command(`create-user ${name}`)) as unknown as S3User;
  }

  /**
   * An S3 client for this server, as the first user or with `creds`. RGW 16 predates the
   * SDK's default CRC checksums on every request, hence "WHEN_REQUIRED".
   */
  client(creds?: S3Credentials, config: S3ClientConfig = {}): S3Client {
    const { accessKeyId, secretAccessKey } = creds ?? this.info;
    const client = new S3Client({
      endpoint: this.info.endpoint,
      region: this.info.region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...config,
    });
    this.clients.push(client);
    return client;
  }

  /** The pids of the daemons running now (from the script's pid file). */
  daemonPids(): number[] {
    return readFileSync(path.join(this.info.dir, 'pids'), 'utf8').split(' ').filter(Boolean).map(Number);
  }

  /** Closes stdin (the script stops everything), waits for the exit, checks the directory is gone. */
  async stop(): Promise<void> {
    for (const c of this.clients.splice(0)) c.destroy();
    if (!this.gone) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill('SIGTERM'), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
    if (existsSync(this.info.dir)) throw new Error(`s3.mjs left its directory ${this.info.dir} behind`);
  }
}

export function startS3(opts?: { size?: number }): Promise<S3Server> {
  return S3Server.start(opts);
}

/** Creates a bucket with a fresh name (`prefix-<random>`) and returns the name. */
export async function s3Bucket(client: S3Client, prefix = 'test', input: Partial<CreateBucketCommandInput> = {}): Promise<string> {
  const bucket = `${prefix}-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ ...input, Bucket: bucket }));
  return bucket;
}

/** Whether a process is alive (a zombie waiting for its parent to reap it is not). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
