/**
 * Acceptance of S3 repositories against a real S3 server (Ceph RGW, test/s3-server.ts):
 * the storage conformance suite on S3Backend; full, incr and diff generations that restore
 * byte-identical (encrypted and plaintext); a vmbkp killed mid-backup; the gateway killed
 * mid-backup; requests throttled and cut off by a proxy, retried and counted exactly; and
 * several backups into one repository at once, also where the bucket ignores If-None-Match
 * (object lock), so that only the commit lock keeps generation numbers apart.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3Backend } from '../src/storage/s3.js';
import {
  type RunResult, type VerifyJson, makeImage, mutateImage, oneLine, sha256File, startVmbkp, tempDir, vmbkp,
} from './helpers.js';
import { REPOSITORY_KINDS, initArgs } from './repo-internals.js';
import { freshPrefix, keysUnder, s3Env, s3Repo } from './s3-repo.js';
import { type S3Server, s3Bucket, startS3 } from './s3-server.js';
import { storageConformance } from './storage-conformance.js';

interface ListJson { sets: { name: string; generations: { generation: number; disks: { name: string; mode: string }[] }[] }[] }
interface BackupJson { set: string; generation: number; storage?: { retries: number; retriesByCause: Record<string, number> } }

let server: S3Server;
let s3: S3Client;
let env: NodeJS.ProcessEnv;
let dir: string;
let cleanupDir: () => Promise<void>;
const img = (name: string) => path.join(dir, `${name}.img`);
const sha = new Map<string, string>();

before(async () => {
  server = await startS3();
  s3 = server.client();
  env = s3Env(server);
  ({ dir, cleanup: cleanupDir } = await tempDir('vmbkp-s3-repo-'));
  // gen0 → gen1 → gen2: a disk and two later states of it (changed extents in genN.json).
  await makeImage(img('gen0'), '64M', 31);
  for (let n = 1; n <= 2; n++) await mutateImage(img(`gen${n - 1}`), img(`gen${n}`), path.join(dir, `gen${n}.json`), 3, 40 + n);
  await makeImage(img('b'), '48M', 32);
  await makeImage(img('c'), '48M', 33);
  await makeImage(img('d'), '48M', 34);
  // Big enough that a backup is still uploading packs when the test stops the gateway.
  await makeImage(img('big'), '768M', 35);
  for (const name of ['gen0', 'gen1', 'gen2', 'b', 'c', 'd', 'big']) sha.set(name, await sha256File(img(name)));
});

after(async () => {
  await server?.stop();
  await cleanupDir?.();
});

/** vmbkp with the server's keys. */
function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return vmbkp(args, { env: { ...env, ...extraEnv } });
}

async function ok(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await cli(args, extraEnv);
  assert.equal(r.code, 0, `vmbkp ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

async function json<T>(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<T> {
  return JSON.parse((await ok([...args, '--json'], extraEnv)).stdout) as T;
}

/**
 * A new repository under a fresh prefix of a new bucket; returns its --repo and where it is.
 * With `initExtra` `--lock-days N`, init creates the bucket (with object lock).
 */
async function newRepo(initExtra: string[] = []): Promise<{ repo: string; bucket: string; prefix: string }> {
  const bucket = initExtra.includes('--lock-days') ? `locked-${freshPrefix('bucket')}` : await s3Bucket(s3, 'repo');
  const prefix = freshPrefix();
  const repo = s3Repo(server.info.endpoint, bucket, prefix);
  await ok(['init', '--repo', repo, ...initExtra]);
  return { repo, bucket, prefix };
}

async function generations(repo: string, set: string): Promise<number[]> {
  const list = await json<ListJson>(['list', '--repo', repo]);
  return list.sets.find((s) => s.name === set)?.generations.map((g) => g.generation) ?? [];
}

/** Restores a generation to a new file and returns its sha256. */
async function restoredSha(repo: string, set: string, generation: number, viaRepo = repo): Promise<string> {
  const out = path.join(dir, `restored-${set}-${generation}-${Math.random().toString(36).slice(2)}.img`);
  await ok(['restore', '--repo', viaRepo, '--set', set, '--generation', String(generation), '--disk', 'sda', '--to', `file:${out}`]);
  try {
    return await sha256File(out);
  } finally {
    await fs.rm(out, { force: true });
  }
}

async function verifyClean(repo: string, what: string, readData = true): Promise<VerifyJson> {
  const r = await cli(['verify', '--repo', repo, '--json', ...(readData ? ['--read-data'] : [])]);
  assert.equal(r.code, 0, `${what}: verify exited ${r.code}: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as VerifyJson;
  assert.equal(report.ok, true, what);
  assert.deepEqual(report.problems, [], what);
  return report;
}

// ---------------------------------------------------------------------------------------------

storageConformance('S3 on Ceph RGW', async () => {
  const bucket = await conformanceBucket();
  const backend = new S3Backend(s3Repo(server.info.endpoint, bucket, freshPrefix('conformance')), {
    credentials: { accessKeyId: server.info.accessKeyId, secretAccessKey: server.info.secretAccessKey },
  });
  return { backend, cleanup: async () => backend.destroy() };
});

/** One unversioned bucket for every run of the conformance suite, each under its own prefix. */
let conformance: Promise<string> | undefined;
function conformanceBucket(): Promise<string> {
  return (conformance ??= s3Bucket(s3, 'conformance'));
}

// ---------------------------------------------------------------------------------------------

// Suites but the gateway's run their tests two at a time: much of their time is spent waiting on processes and RGW.
describe('round trip on S3: full, incr, diff', { concurrency: 2 }, () => {
  for (const kind of REPOSITORY_KINDS) {
    it(`${kind} repository: every generation restores byte-identical, verify --read-data passes`, async () => {
      const { repo } = await newRepo(initArgs(kind));
      // One disk path for every generation, as a VM's disk would be.
      const disk = path.join(dir, `disk-roundtrip-${kind}.img`);
      const plan: [string, string[]][] = [
        ['gen0', ['--mode', 'full']],
        ['gen1', ['--mode', 'incr', '--changed', `sda=${path.join(dir, 'gen1.json')}`]],
        ['gen2', ['--mode', 'diff']],
      ];
      for (const [image, args] of plan) {
        await fs.copyFile(img(image), disk);
        await ok(['backup', '--repo', repo, '--set', 'vm1', ...args, `sda=file:${disk}`]);
      }
      await fs.rm(disk);
      const list = await json<ListJson>(['list', '--repo', repo]);
      const gens = list.sets.find((s) => s.name === 'vm1')!.generations;
      assert.deepEqual(gens.map((g) => [g.generation, g.disks[0]!.mode]), [[1, 'full'], [2, 'incr'], [3, 'diff']]);
      for (const [n, [image]] of plan.entries()) assert.equal(await restoredSha(repo, 'vm1', n + 1), sha.get(image), `generation ${n + 1}`);
      const report = await verifyClean(repo, 'verify --read-data');
      assert.equal(report.generations, 3);
      assert.ok(report.bytesRead > 0);
      assert.equal(report.unreferencedPacks, 0);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('a vmbkp killed mid-backup (SIGKILL at a failpoint)', { concurrency: 2 }, () => {
  for (const failpoint of ['flush:packs-written', 'backup:before-commit']) {
    it(`killed at ${failpoint}: verify passes, gc reclaims what it wrote, the next backup succeeds and restores exactly`, async () => {
      const { repo, bucket, prefix } = await newRepo();
      await ok(['backup', '--repo', repo, '--set', 'vm', `sda=file:${img('gen0')}`]);
      const args = ['backup', '--repo', repo, '--set', 'vm', '--mode', 'full', `sda=file:${img('b')}`];
      const killed = await startVmbkp(args, { env: { ...env, VMBKP_FAILPOINT: failpoint } }).done;
      assert.equal(killed.signal, 'SIGKILL', `the failpoint killed vmbkp; it exited ${killed.code}: ${killed.stderr}`);
      assert.equal((await keysUnder(s3, bucket, `${prefix}/locks/`)).length, 1, 'the dead backup left its lock');

      const v = await verifyClean(repo, 'verify after the kill', false);
      assert.equal(v.generations, 1);
      assert.ok(v.unreferencedPacks + (v.unreferencedBlobs ?? 0) > 0, `what the killed backup wrote is unreferenced: ${JSON.stringify(v)}`);
      assert.deepEqual(await generations(repo, 'vm'), [1]);

      // gc clears the dead process's lock (with a warning) and reclaims what it wrote.
      const g = await ok(['gc', '--repo', repo, '--json']);
      assert.match(g.stderr, /^vmbkp: warning: removed stale lock of backup of vm \(pid \d+ on .*\): that process is gone$/m);
      const gc = JSON.parse(g.stdout) as { packsRemoved: number; bytesFreed: number };
      assert.ok(gc.packsRemoved > 0 && gc.bytesFreed > 0, `gc removed the dead backup's packs: ${g.stdout}`);
      const clean = await verifyClean(repo, 'verify after gc', false);
      assert.equal(clean.unreferencedPacks, 0);
      assert.equal(clean.unreferencedBlobs, 0);

      // The next backup of the set succeeds, takes the next number, and restores byte-identical.
      await ok(args);
      assert.deepEqual(await generations(repo, 'vm'), [1, 2]);
      assert.equal(await restoredSha(repo, 'vm', 2), sha.get('b'));
      assert.equal(await restoredSha(repo, 'vm', 1), sha.get('gen0'));
      await verifyClean(repo, 'verify after the next backup');
      assert.deepEqual(await keysUnder(s3, bucket, `${prefix}/locks/`), [], 'no lock left');
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('the gateway killed mid-backup', () => {
  it('the backup fails with exit 1 and one line, an I/O error; after a restart the next backup succeeds and verify passes', async () => {
    const { repo, bucket, prefix } = await newRepo();
    const backup = startVmbkp(['backup', '--repo', repo, '--set', 'big', '--mode', 'full', `sda=file:${img('big')}`], { env });
    // Stop RGW once it has taken some packs: the backup is then certainly uploading.
    for (;;) {
      const packs = await keysUnder(s3, bucket, `${prefix}/data/`);
      if (packs.length >= 2) break;
      const exited = await Promise.race([backup.done, new Promise((r) => setTimeout(r, 50))]);
      if (exited) assert.fail(`the backup ended before the gateway was stopped: ${JSON.stringify(exited)}`);
    }
    await server.stopRgw();
    let r: RunResult;
    try {
      r = await backup.done;
    } finally {
      await server.startRgw();
    }
    assert.equal(r.code, 1, `exit ${r.code}, stderr: ${r.stderr}`);
    const line = oneLine(r.stderr);
    assert.match(line, /^vmbkp: error: (storing|reading|looking up|listing) \S+ (in|from) s3:http:\/\/127\.0\.0\.1:\d+\/\S+ failed: (ECONNREFUSED|ECONNRESET|EPIPE|connection cut)/);
    assert.doesNotMatch(line, /damaged|locks\//, 'the error is the failed transfer, not a damaged repository or the lock left behind');
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    await ok(['backup', '--repo', repo, '--set', 'big', '--mode', 'full', `sda=file:${img('big')}`]);
    assert.deepEqual(await generations(repo, 'big'), [1]);
    assert.equal(await restoredSha(repo, 'big', 1), sha.get('big'));
    await verifyClean(repo, 'verify after the restart', false);
  });
});

// ---------------------------------------------------------------------------------------------

/** The S3 error body of a throttled request. */
function slowDownBody(resource: string, n: number): string {
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>${resource}</Resource><RequestId>fault-${n}</RequestId></Error>`;
}

/**
 * An HTTP proxy in front of RGW that fails every `every`-th request, in turn: a 503
 * SlowDown; a connection reset while the request arrives (never forwarded); a connection
 * reset after RGW answered (the request took effect: a put is stored, a delete done), in
 * the middle of the response body where there is one. Everything else passes through.
 */
class FaultProxy {
  requests = 0;
  slowDowns = 0;
  /** Connections reset before the request reached RGW, and after RGW answered it. */
  resetsBefore = 0;
  resetsAfter = 0;
  /** Failures the proxy did not mean (an upstream error): each would be a retry nobody injected. */
  readonly unexpected: string[] = [];
  private readonly server: http.Server;

  constructor(private readonly target: URL, private readonly every: number) {
    this.server = http.createServer((req, res) => this.handle(req, res));
    // Never close an idle client connection: a client reusing one just as it closes would see a reset nobody injected.
    this.server.keepAliveTimeout = 0;
  }

  get resets(): number {
    return this.resetsBefore + this.resetsAfter;
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const n = ++this.requests;
    const fault = n % this.every === 0 ? (n / this.every) % 3 : -1;
    if (fault === 0 && req.method !== 'HEAD') {
      // Throttled: the body is read (the connection stays usable), then refused.
      this.slowDowns++;
      req.resume();
      req.on('end', () => {
        const body = slowDownBody(req.url ?? '/', n);
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    if (fault === 0 || fault === 1) {
      // Cut off while the request arrives: after its first bytes of body, or at once when it has none.
      this.resetsBefore++;
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > 0) req.once('data', () => req.socket.resetAndDestroy());
      else req.socket.resetAndDestroy();
      return;
    }
    this.forward(req, res, fault === 2);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, cutResponse: boolean): void {
    const headers = { ...req.headers };
    // Neither is signed; the proxy speaks HTTP/1.1 on each side itself.
    delete headers['expect'];
    delete headers['connection'];
    const up = http.request({ host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers, agent: false });
    up.on('error', (err) => {
      this.unexpected.push(`${req.method} ${req.url}: ${err.message}`);
      res.destroy();
    });
    up.on('response', (upRes) => {
      const out = { ...upRes.headers };
      delete out['connection'];
      delete out['keep-alive'];
      if (!cutResponse) {
        res.writeHead(upRes.statusCode ?? 502, out);
        upRes.pipe(res);
        return;
      }
      this.resetsAfter++;
      const chunks: Buffer[] = [];
      upRes.on('data', (d: Buffer) => chunks.push(d));
      upRes.on('end', () => {
        const body = Buffer.concat(chunks);
        if (body.length < 2) {
          req.socket.resetAndDestroy();
          return;
        }
        // Headers and half the body, then the connection breaks.
        res.writeHead(upRes.statusCode ?? 502, out);
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
      });
    });
    req.pipe(up);
  }
}

describe('throttling and broken connections (a fault-injecting proxy)', () => {
  it('a backup through the proxy succeeds, restores exactly, and reports exactly the retries the proxy caused', async () => {
    const { bucket, prefix, repo } = await newRepo();
    const proxy = new FaultProxy(new URL(server.info.endpoint), 3);
    const proxied = s3Repo(await proxy.start(), bucket, prefix);
    try {
      const r = await ok(['backup', '--repo', proxied, '--set', 'vm', '--json', `sda=file:${img('gen0')}`]);
      const report = JSON.parse(r.stdout) as BackupJson;
      assert.deepEqual(proxy.unexpected, []);
      assert.ok(proxy.slowDowns >= 1 && proxy.resetsBefore >= 1 && proxy.resetsAfter >= 1,
        `the proxy saw ${proxy.requests} requests and injected too few faults to tell: ${proxy.slowDowns} SlowDown, ${proxy.resetsBefore}+${proxy.resetsAfter} resets`);
      const faults = proxy.slowDowns + proxy.resets;
      assert.ok(report.storage, 'an S3 backup reports its storage counters');
      assert.equal(report.storage.retries, faults, `retries ${JSON.stringify(report.storage)}; injected ${proxy.slowDowns} SlowDown, ${proxy.resets} resets`);
      const { SlowDown: slowDowns, ...others } = report.storage.retriesByCause;
      assert.equal(slowDowns, proxy.slowDowns, 'each 503 SlowDown is one retry, counted as SlowDown');
      for (const cause of Object.keys(others)) assert.match(cause, /^(ECONNRESET|EPIPE|connection cut)$/, 'a reset is counted as a broken connection');
      assert.equal(Object.values(others).reduce((a, b) => a + b, 0), proxy.resets, 'each reset is one retry');
      const causes = Object.entries(report.storage.retriesByCause).map(([c, n]) => `${c} ${n}`).join(', ');
      assert.equal(oneLine(r.stderr), `vmbkp: ${faults} requests to ${proxied} retried (${causes})`);

      assert.equal(await restoredSha(repo, 'vm', 1), sha.get('gen0'), 'restored straight from RGW');
      assert.equal(await restoredSha(repo, 'vm', 1, proxied), sha.get('gen0'), 'restored through the faults');
      assert.deepEqual(proxy.unexpected, []);
      await verifyClean(repo, 'verify');
    } finally {
      await proxy.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * Backups started together, each held at backup:before-commit until all have got there and
 * then let go at once, so that their commits meet. Returns each one's --json report.
 */
async function backupsTogether(repo: string, backups: { set: string; image: string }[]): Promise<BackupJson[]> {
  const started = backups.map(({ set, image }) => startVmbkp(['backup', '--repo', repo, '--set', set, '--mode', 'full', '--json', `sda=file:${img(image)}`],
    { env: { ...env, VMBKP_FAILPOINT: 'backup:before-commit:pause' } }));
  await Promise.all(started.map((c) => c.stderrMatching(/failpoint backup:before-commit: paused/)));
  for (const c of started) process.kill(c.pid, 'SIGUSR2');
  const results = await Promise.all(started.map((c) => c.done));
  return results.map((r, i) => {
    assert.equal(r.code, 0, `backup ${i + 1} of ${backups.length} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as BackupJson;
  });
}

describe('several writers into one repository at once', { concurrency: 2 }, () => {
  it('two backups of different sets at once: both listed, each restores exactly', async () => {
    const { repo, bucket, prefix } = await newRepo();
    const reports = await backupsTogether(repo, [{ set: 'web', image: 'b' }, { set: 'db', image: 'c' }]);
    assert.deepEqual(reports.map((r) => [r.set, r.generation]), [['web', 1], ['db', 1]]);
    assert.deepEqual(await generations(repo, 'web'), [1]);
    assert.deepEqual(await generations(repo, 'db'), [1]);
    assert.equal(await restoredSha(repo, 'web', 1), sha.get('b'));
    assert.equal(await restoredSha(repo, 'db', 1), sha.get('c'));
    await verifyClean(repo, 'verify', false);
    assert.deepEqual(await keysUnder(s3, bucket, `${prefix}/locks/`), []);
  });

  for (const locked of [false, true]) {
    const what = locked ? 'an object-locked repository (RGW ignores If-None-Match: only the commit lock keeps numbers apart)' : 'a repository';
    it(`three backups of the same set at once into ${what}: three generations, distinct numbers, each restores exactly`, async () => {
      const { repo, bucket, prefix } = await newRepo(locked ? ['--lock-days', '1'] : []);
      const images = ['b', 'c', 'd'];
      const reports = await backupsTogether(repo, images.map((image) => ({ set: 'vm', image })));
      const numbers = reports.map((r) => r.generation);
      assert.deepEqual([...numbers].sort(), [1, 2, 3], `the backups reported generations ${numbers}`);
      assert.deepEqual(await generations(repo, 'vm'), [1, 2, 3], 'every generation is listed');
      // Each number holds the image of the backup that reported it: no manifest replaced another.
      for (const [i, n] of numbers.entries()) assert.equal(await restoredSha(repo, 'vm', n), sha.get(images[i]!), `generation ${n}`);
      const v = await verifyClean(repo, 'verify', false);
      assert.equal(v.generations, 3);
      assert.deepEqual(await keysUnder(s3, bucket, `${prefix}/locks/`), [], 'every lock was released');
    });
  }
});
