/**
 * vmbkp serve against real NBD clients: nbdinfo and nbdcopy (libnbd) and qemu-img /
 * qemu-io (QEMU's own NBD client), over a Unix socket and TCP; a writable overlay that
 * never reaches the repository; a corrupted chunk that fails the reads that need it (EIO)
 * and only those; hostile clients speaking raw bytes; bad input; and SIGTERM releasing
 * the lock.
 *
 * The repository: set s, generation 1 = image a, generation 2 = a2 (a with 5 % rewritten).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { type Socket, connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChunkPool } from '../src/repository/chunk-pool.js';
import { GenerationExport } from '../src/engine/generation-export.js';
import { OverlayExport } from '../src/engine/overlay-export.js';
import { NbdClient } from '../src/nbd/client.js';
import { ByteReader } from '../src/nbd/byte-reader.js';
import { IHAVEOPT, NBDMAGIC, OPTION_REPLY_MAGIC, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, TransmissionFlag } from '../src/nbd/constants.js';
import { NbdServerError } from '../src/nbd/errors.js';
import type { ExportBackend } from '../src/nbd/server.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { loadDiskIndex } from '../src/repository/disk-index.js';
import { Repository } from '../src/repository/repository.js';
import { type Served, startServe } from './serve-cli.js';
import { type RunResult, flipByte, listFiles, makeImage, mutateImage, oneLine, run, sha256File, tempDir, treeDigest, vmbkp } from './helpers.js';
import { chunkIds, openTestRepository, packEntries } from './repo-internals.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

/** A raw NBD connection: bytes in, bytes out, nothing checked for the test. */
class Raw {
  private constructor(readonly socket: Socket, readonly reader: ByteReader, readonly closed: Promise<void>) {}

  static async connect(socketPath: string): Promise<Raw> {
    const socket = connect(socketPath);
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    return new Raw(socket, new ByteReader(socket, 'raw test client'), closed);
  }

  write(b: Buffer): void { this.socket.write(b); }
  read(n: number): Promise<Buffer> { return this.reader.read(n); }

  /** Reads the greeting, answers with client flags. */
  async greet(clientFlags = 3): Promise<number> {
    const hello = await this.read(18);
    assert.equal(hello.readBigUInt64BE(0), NBDMAGIC);
    assert.equal(hello.readBigUInt64BE(8), IHAVEOPT);
    this.write(u32(clientFlags));
    return hello.readUInt16BE(16);
  }

  option(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.write(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(20);
    assert.equal(h.readBigUInt64BE(0), OPTION_REPLY_MAGIC);
    const data = await this.read(h.readUInt32BE(16));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }

  request(type: number, cookie: number, offset: number, length: number, flags = 0, payload?: Buffer): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.write(payload ? Buffer.concat([h, payload]) : h);
  }

  /** A simple reply; `dataLength(cookie)` says how many data bytes follow a successful one. */
  async simpleReply(dataLength: (cookie: number) => number = () => 0): Promise<{ error: number; cookie: number; data: Buffer }> {
    const h = await this.read(16);
    assert.equal(h.readUInt32BE(0), SIMPLE_REPLY_MAGIC);
    const error = h.readUInt32BE(4);
    const cookie = Number(h.readBigUInt64BE(8));
    const data = error === 0 ? await this.read(dataLength(cookie)) : Buffer.alloc(0);
    return { error, cookie, data };
  }

  async structuredChunk(): Promise<{ flags: number; type: number; cookie: number; payload: Buffer }> {
    const h = await this.read(20);
    assert.equal(h.readUInt32BE(0), STRUCTURED_REPLY_MAGIC);
    return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), cookie: Number(h.readBigUInt64BE(8)), payload: await this.read(h.readUInt32BE(16)) };
  }

  /** NBD_OPT_GO on `name`; returns size and flags. */
  async go(name: string): Promise<{ size: number; flags: number }> {
    this.option(7, Buffer.concat([u32(Buffer.byteLength(name)), Buffer.from(name), u16(0)]));
    let size = -1;
    let flags = -1;
    for (;;) {
      const r = await this.optionReply();
      assert.equal(r.option, 7);
      if (r.type === 1) break;
      assert.equal(r.type, 3, `NBD_OPT_GO answered ${r.type.toString(16)}: ${r.data.toString()}`);
      if (r.data.readUInt16BE(0) === 0) { size = Number(r.data.readBigUInt64BE(2)); flags = r.data.readUInt16BE(10); }
    }
    return { size, flags };
  }

  destroy(): void { this.socket.destroy(); }
}

function u32(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const socketOf = (uri: string) => new URL(uri.replace(/^nbd\+unix:/, 'x:')).searchParams.get('socket')!;

describe('vmbkp serve', { timeout: 300_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const file = (name: string) => path.join(dir, name);
  let repo: string;
  const shaOf = new Map<string, string>();

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-serve-test-'));
    await makeImage(file('a.img'), '64M', 501);
    await mutateImage(file('a.img'), file('a2.img'), file('a2.json'), 5, 502);
    for (const n of ['a', 'a2']) shaOf.set(n, await sha256File(file(`${n}.img`)));
    assert.notEqual(shaOf.get('a'), shaOf.get('a2'));
    repo = file('repo');
    ok(await vmbkp(['init', '--repo', repo]), 'init');
    const disk = file('disk.img');
    await fs.copyFile(file('a.img'), disk);
    ok(await vmbkp(['backup', '--repo', repo, '--set', 's', `d=file:${disk}`]), 'backup 1');
    await fs.copyFile(file('a2.img'), disk);
    ok(await vmbkp(['backup', '--repo', repo, '--set', 's', `d=file:${disk}`]), 'backup 2');
  });
  after(() => cleanup());

  const common = () => ['--repo', repo, '--set', 's', '--disk', 'd'];

  it('prints one ready line; nbdinfo sees the size, read-only, multi-conn; nbdcopy of each generation equals its source image', async () => {
    const human = await startServe([...common(), '--generation', '1'], false);
    const g2 = await startServe([...common(), '--generation', 'latest']);
    try {
      assert.match(human.line, /^serving set s generation 1 disk d \(64\.0 MiB\) read-only at nbd\+unix:\/\/\/d\?socket=\/\S+\/nbd\.sock$/);
      assert.deepEqual({ ...g2.info, uri: '' }, { uri: '', set: 's', generation: 2, disk: 'd', size: SIZE, writable: false, tls: false });
      assert.match(g2.info.uri, /^nbd\+unix:\/\/\/d\?socket=/);
      const sock = socketOf(g2.info.uri);
      assert.equal((await fs.stat(path.dirname(sock))).mode & 0o777, 0o700, 'the default socket lives in a private directory');

      const r = await run('nbdinfo', ['--json', human.info.uri]);
      ok(r, 'nbdinfo');
      const e = (JSON.parse(r.stdout) as { exports: Record<string, unknown>[] }).exports[0]!;
      assert.equal(e['export-size'], SIZE);
      assert.equal(e['is_read_only'], true);
      assert.equal(e['can_multi_conn'], true);
      assert.equal(e['can_flush'], true);
      assert.equal(e['export-name'], 'd');
      assert.deepEqual(e['contexts'], ['base:allocation']);

      for (const [s, name] of [[human, 'a'], [g2, 'a2']] as const) {
        const out = file(`copy-${name}.img`);
        ok(await run('nbdcopy', [s.info.uri, out]), `nbdcopy ${name}`);
        assert.equal(await sha256File(out), shaOf.get(name), `generation of ${name}.img reads back identical`);
        await fs.rm(out);
      }
      assert.equal(human.stderr(), '');
    } finally {
      for (const s of [human, g2]) assert.equal((await s.stop()).code, 0);
    }
  });

  it('serves over TCP; qemu-img convert (QEMU\'s NBD client) reads it identically', async () => {
    const s = await startServe([...common(), '--generation', '1', '--listen', 'tcp:127.0.0.1:0']);
    try {
      assert.match(s.info.uri, /^nbd:\/\/127\.0\.0\.1:\d+\/d$/);
      assert.notEqual(s.info.uri, 'nbd://127.0.0.1:0/d');
      const out = file('qemu.img');
      ok(await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.info.uri, out]), 'qemu-img convert');
      assert.equal(await sha256File(out), shaOf.get('a'));
      await fs.rm(out);
      const c = file('tcp-copy.img');
      ok(await run('nbdcopy', ['--connections=2', s.info.uri, c]), 'nbdcopy over TCP');
      assert.equal(await sha256File(c), shaOf.get('a'));
      await fs.rm(c);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  it('a read-only export refuses writes, trims and zeroing with EPERM and goes on serving', async () => {
    const s = await startServe([...common()]);
    try {
      const c = await NbdClient.connect(parseNbdUri(s.info.uri));
      assert.ok(c.readOnly);
      await assert.rejects(c.write(0, Buffer.alloc(4096, 1)), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EPERM');
      await assert.rejects(c.writeZeroes(0, 4096), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EPERM');
      await assert.rejects(c.trim(0, 4096), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EPERM');
      const img = await fs.readFile(file('a2.img'));
      assert.deepEqual(await c.read(12345, 100_000), img.subarray(12345, 112_345));
      await c.close();
      // QEMU's client honours the flag: it will not even open the export for writing.
      const q = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 64k', s.info.uri]);
      assert.notEqual(q.code, 0);
      assert.doesNotMatch(q.stdout, /wrote 65536/);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
    const back = file('after-eperm.img');
    const s2 = await startServe([...common()]);
    try {
      ok(await run('nbdcopy', [s2.info.uri, back]), 'nbdcopy');
      assert.equal(await sha256File(back), shaOf.get('a2'));
    } finally {
      await s2.stop();
      await fs.rm(back);
    }
  });

  it('--writable: writes (aligned, unaligned, zeroes) land in an overlay every connection sees; the repository never changes', async () => {
    const before = await treeDigest(repo);
    const s = await startServe([...common(), '--generation', '1', '--writable']);
    const expected = await fs.readFile(file('a.img'));
    try {
      assert.equal(s.info.writable, true);
      const info = await run('nbdinfo', ['--json', s.info.uri]);
      ok(info, 'nbdinfo');
      const e = (JSON.parse(info.stdout) as { exports: Record<string, unknown>[] }).exports[0]!;
      assert.equal(e['is_read_only'], false);
      assert.equal(e['can_zero'], true);
      assert.equal(e['can_trim'], true);
      assert.equal(e['can_multi_conn'], false);

      // The unaligned write goes where image a holds data, so that the parts of its first and
      // last 4 KiB block it does not cover must keep the data (read-modify-write in the overlay).
      let at = 65536;
      const hasData = (o: number) => !expected.subarray(o, o + 4096).every((x) => x === 0);
      while (!(hasData(at) && hasData(at + 4096))) at += 4096;
      assert.ok(at + 8192 < MiB);
      const unaligned = at + 1001;
      const q = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 64k', '-c', `write -P 0xcd ${unaligned} 5000`, '-c', 'write -z 1048576 1048576',
        '-c', `write -P 0xee ${SIZE - 3000} 3000`, '-c', 'read -P 0xab 0 64k', s.info.uri]);
      ok(q, 'qemu-io');
      assert.match(q.stdout, /wrote 65536\/65536 bytes at offset 0/);
      assert.match(q.stdout, new RegExp(`wrote 5000/5000 bytes at offset ${unaligned}`));
      assert.match(q.stdout, /wrote 1048576\/1048576 bytes at offset 1048576/);
      assert.match(q.stdout, /read 65536\/65536 bytes at offset 0/);
      assert.doesNotMatch(q.stdout + q.stderr, /Pattern verification failed|error/i);
      expected.fill(0xab, 0, 65536);
      expected.fill(0xcd, unaligned, unaligned + 5000);
      expected.fill(0, MiB, 2 * MiB);
      expected.fill(0xee, SIZE - 3000);
      assert.notEqual(sha(expected), shaOf.get('a'));

      // Another client, on other connections, reads what the first wrote.
      const out = file('overlay.img');
      ok(await run('nbdcopy', [s.info.uri, out]), 'nbdcopy of the written export');
      assert.equal(await sha256File(out), sha(expected));
      await fs.rm(out);
      // Writing with nbdcopy too: a whole image goes in and comes back out.
      ok(await run('nbdcopy', [file('a2.img'), s.info.uri]), 'nbdcopy into the export');
      const c = await NbdClient.connect(parseNbdUri(s.info.uri));
      const a2 = await fs.readFile(file('a2.img'));
      for (const at of [0, 100_000, SIZE - 300_000]) assert.deepEqual(await c.read(at, 300_000), a2.subarray(at, at + 300_000));
      await c.flush();
      await c.close();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
    assert.deepEqual(await treeDigest(repo), before, 'the repository is byte for byte what it was');
    ok(await vmbkp(['verify', '--repo', repo, '--read-data']), 'verify --read-data');
    // The overlay is gone: generation 1 reads as it was backed up.
    const again = await startServe([...common(), '--generation', '1', '--writable']);
    try {
      const out = file('again.img');
      ok(await run('nbdcopy', [again.info.uri, out]), 'nbdcopy');
      assert.equal(await sha256File(out), shaOf.get('a'));
      await fs.rm(out);
    } finally {
      await again.stop();
    }
  });

  describe('the generation export, in process, on the real repository', () => {
    let index: Awaited<ReturnType<typeof loadDiskIndex>>;
    let r: Repository;
    let img: Buffer;
    let pool: ChunkPool;
    before(async () => {
      r = await openTestRepository(repo);
      await r.loadIndex();
      const m = await r.readGeneration('s', 2);
      index = await loadDiskIndex(r, m.disks[0]!, 'test');
      img = await fs.readFile(file('a2.img'));
      pool = new ChunkPool(2, r.codecSpec);
    });
    after(() => pool.close());

    /** The distinct non-zero chunks over [from, to). */
    const distinct = (from: number, to: number) => {
      const set = new Set<string>();
      for (let i = Math.floor(from / index.chunkSize); i * index.chunkSize < to; i++) if (!index.isZero(i)) set.add(index.get(i).toString('hex'));
      return set.size;
    };

    for (const withPool of [true, false]) {
      it(`4 KiB sequential reads decode each chunk once; reads of any size and alignment are exact (${withPool ? 'worker pool' : 'main thread'})`, async () => {
        const e = await GenerationExport.open({ repo: r, index, what: 'test', ...(withPool ? { pool } : {}) });
        try {
          const span = 8 * MiB;
          for (let o = 0; o < span; o += 4096) {
            const b = Buffer.alloc(4096, 0x55);
            await e.read(o, b);
            assert.ok(b.equals(img.subarray(o, o + 4096)), `4 KiB at ${o}`);
          }
          // Read-ahead may read a few chunks past the span; never a chunk twice.
          assert.ok(e.chunksRead >= distinct(0, span) && e.chunksRead <= distinct(0, span + 2 * MiB), `${e.chunksRead} chunks read for ${distinct(0, span)} distinct`);
          const reads: [number, number][] = [[0, 1], [SIZE - 1, 1], [SIZE - 5 * MiB - 3, 5 * MiB + 3], [123_457, 1_000_001], [20 * MiB + 100, 32 * MiB]];
          await Promise.all(reads.map(async ([at, n]) => {
            const b = Buffer.alloc(n, 0x55);
            await e.read(at, b);
            assert.ok(b.equals(img.subarray(at, at + n)), `${n} bytes at ${at}`);
          }));
        } finally {
          await e.close();
        }
      });
    }
  });

  describe('a corrupted chunk', () => {
    let bad: string;
    /** Offsets in image a of the corrupted chunk, and of a chunk that is fine. */
    let badAt: number[];
    let goodAt: number;
    let digest: string;
    let chunkSize: number;

    before(async () => {
      bad = file('bad-repo');
      await fs.cp(repo, bad, { recursive: true });
      const r = await openTestRepository(bad);
      ({ chunkSize } = r.config);
      const img = await fs.readFile(file('a.img'));
      const where = chunkIds(r, img);
      const ids: (string | undefined)[] = [];
      for (const [id, offsets] of where) for (const o of offsets) ids[o / chunkSize] = id;
      // A chunk blob of image a, not the first chunk, whose neighbour before it is another chunk:
      // flip a byte in the middle of its stored bytes.
      const usable = (d: string) => {
        const first = where.get(d)?.[0];
        return first !== undefined && first >= chunkSize && ids[first / chunkSize - 1] !== d;
      };
      for (const name of await listFiles(path.join(bad, 'data'))) {
        const e = (await packEntries(r, `data/${name}`)).find((x) => x.type === 0 && usable(x.digest.toString('hex')));
        if (!e) continue;
        digest = e.digest.toString('hex');
        badAt = where.get(digest)!;
        await flipByte(path.join(bad, 'data', name), e.offset + Math.floor(e.length / 2));
        break;
      }
      assert.ok(digest, 'found a chunk of image a to corrupt');
      goodAt = [...where.entries()].find(([h]) => h !== digest)![1][0]!;
    });

    it('nbdcopy fails; a read of the chunk fails with EIO naming the blob; every other read still succeeds', async () => {
      const s = await startServe(['--repo', bad, '--set', 's', '--disk', 'd', '--generation', '1']);
      try {
        const out = file('bad-copy.img');
        const r = await run('nbdcopy', [s.info.uri, out]);
        assert.notEqual(r.code, 0, 'nbdcopy must not succeed');
        assert.match(r.stderr, /Input\/output error/);
        await fs.rm(out, { force: true });

        const c = await NbdClient.connect(parseNbdUri(s.info.uri));
        await assert.rejects(c.read(badAt[0]! + 1000, 64 * 1024), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EIO'
          && new RegExp(`blob ${digest} in pack \\w+ is corrupt`).test(e.message));
        // A read that only touches the chunk's first byte fails too: no partial data.
        await assert.rejects(c.read(badAt[0]! - 10, 11), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EIO');
        const img = await fs.readFile(file('a.img'));
        assert.deepEqual(await c.read(goodAt, chunkSize), img.subarray(goodAt, goodAt + chunkSize));
        assert.deepEqual(await c.read(badAt[0]! - 4096, 4096), img.subarray(badAt[0]! - 4096, badAt[0]!), 'the bytes just before it read fine');
        // And again: a failure is not cached as data.
        await assert.rejects(c.read(badAt[0]!, 4096), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EIO');
        await c.close();

        // QEMU's client, without structured-reply messages: the same EIO.
        const q = await run('qemu-io', ['-f', 'raw', '-r', '-c', `read ${badAt[0]} 4096`, '-c', `read -v ${goodAt} 16`, s.info.uri]);
        assert.match(q.stdout + q.stderr, /read failed: Input\/output error/);
        assert.match(q.stdout, new RegExp(`read 16/16 bytes at offset ${goodAt}`));
        assert.match(s.stderr(), new RegExp(`^vmbkp: warning: NBD client \\d+: read of \\d+ bytes at offset \\d+ failed, answered EIO: reading set s generation 1 disk d at offset ${badAt[0]}: blob ${digest} in pack \\w+ is corrupt`, 'm'));
      } finally {
        assert.equal((await s.stop()).code, 0);
      }
    });
  });

  describe('hostile and broken clients', () => {
    let s: Served;
    let sock: string;
    let img: Buffer;
    before(async () => {
      s = await startServe([...common(), '--generation', '2']);
      sock = socketOf(s.info.uri);
      img = await fs.readFile(file('a2.img'));
    });
    after(async () => { assert.equal((await s.stop()).code, 0); });

    /** After every hostile client the server still serves a real one. */
    async function stillServes(): Promise<void> {
      const r = await run('nbdinfo', ['--size', s.info.uri]);
      ok(r, 'nbdinfo');
      assert.equal(r.stdout.trim(), String(SIZE));
    }

    it('garbage instead of client flags and options: disconnected', async () => {
      const c = await Raw.connect(sock);
      await c.read(18);
      c.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10)));
      await c.closed;
      const c2 = await Raw.connect(sock);
      await c2.greet();
      c2.write(Buffer.alloc(64, 0x41)); // an option with a bad magic
      await c2.closed;
      await stillServes();
    });

    it('a truncated option, then the client goes away: the server lets go of it', async () => {
      const c = await Raw.connect(sock);
      await c.greet();
      const h = Buffer.alloc(16);
      h.writeBigUInt64BE(IHAVEOPT, 0);
      h.writeUInt32BE(7, 8);
      h.writeUInt32BE(100, 12);
      c.write(Buffer.concat([h, Buffer.alloc(10)]));
      c.socket.end();
      await c.closed;
      await stillServes();
    });

    it('an option claiming 2 GiB of data is not read: disconnected', async () => {
      const c = await Raw.connect(sock);
      await c.greet();
      const h = Buffer.alloc(16);
      h.writeBigUInt64BE(IHAVEOPT, 0);
      h.writeUInt32BE(1, 8);
      h.writeUInt32BE(0x80000000, 12);
      c.write(h);
      await c.closed;
      await stillServes();
    });

    it('negotiation: unknown options, LIST, a wrong export name, GO; then bad and good requests, many in flight', async () => {
      const c = await Raw.connect(sock);
      const flags = await c.greet();
      assert.equal(flags, 3, 'fixed newstyle, no zeroes');
      c.option(42, Buffer.from('whatever'));
      let r = await c.optionReply();
      assert.deepEqual([r.option, r.type], [42, 0x80000001], 'NBD_REP_ERR_UNSUP');
      c.option(5); // STARTTLS
      r = await c.optionReply();
      assert.equal(r.type, 0x80000001);
      c.option(3, Buffer.from('x')); // LIST with data
      assert.equal((await c.optionReply()).type, 0x80000003, 'NBD_REP_ERR_INVALID');
      c.option(3);
      r = await c.optionReply();
      assert.equal(r.type, 2);
      assert.equal(r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString(), 'd');
      assert.equal((await c.optionReply()).type, 1);
      c.option(7, Buffer.concat([u32(5), Buffer.from('other'), u16(0)]));
      r = await c.optionReply();
      assert.equal(r.type, 0x80000006, 'NBD_REP_ERR_UNKNOWN');
      assert.match(r.data.toString(), /no export "other"/);
      c.option(7, Buffer.concat([u32(1), Buffer.from('d'), u16(3)])); // count says 3, none follow
      assert.equal((await c.optionReply()).type, 0x80000003);
      const { size, flags: tflags } = await c.go('d');
      assert.equal(size, SIZE);
      assert.ok(tflags & TransmissionFlag.READ_ONLY);
      assert.ok(tflags & TransmissionFlag.CAN_MULTI_CONN);

      // Out of bounds, oversized, zero length, unknown command, bad flags: EINVAL; a write: EPERM (its payload is skipped).
      c.request(0, 1, SIZE - 100, 200);
      c.request(0, 2, 0, 33 * MiB);
      c.request(0, 3, 0, 0);
      c.request(42, 4, 0, 4096);
      c.request(0, 5, 0, 4096, 0x4);
      c.request(1, 6, 0, 8, 0, Buffer.from('12345678'));
      c.request(7, 7, 0, 4096); // block status without a meta context
      const errors = new Map<number, number>();
      for (let i = 0; i < 7; i++) { const x = await c.simpleReply(); errors.set(x.cookie, x.error); }
      assert.deepEqual(Object.fromEntries(errors), { 1: 22, 2: 22, 3: 22, 4: 22, 5: 22, 6: 1, 7: 22 });

      // 40 reads sent at once (more than the server runs at once), answered in any order, each right.
      const want = new Map<number, [number, number]>();
      const batch: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        const at = (i * 7919 * 4099) % (SIZE - MiB);
        const len = 1 + ((i * 104729) % (700 * 1024));
        want.set(100 + i, [at, len]);
        const h = Buffer.alloc(28);
        h.writeUInt32BE(REQUEST_MAGIC, 0);
        h.writeBigUInt64BE(BigInt(100 + i), 8);
        h.writeBigUInt64BE(BigInt(at), 16);
        h.writeUInt32BE(len, 24);
        batch.push(h);
      }
      c.write(Buffer.concat(batch));
      for (let i = 0; i < 40; i++) {
        const x = await c.simpleReply((cookie) => want.get(cookie)![1]);
        assert.equal(x.error, 0);
        const [at, len] = want.get(x.cookie)!;
        assert.ok(x.data.equals(img.subarray(at, at + len)), `read ${x.cookie} of ${len} bytes at ${at}`);
        want.delete(x.cookie);
      }
      assert.equal(want.size, 0);
      c.request(3, 8, 0, 0); // flush
      assert.deepEqual(await c.simpleReply(), { error: 0, cookie: 8, data: Buffer.alloc(0) });
      c.request(2, 9, 0, 0); // disconnect
      await c.closed;
      await stillServes();
    });

    it('structured replies: data chunks, error chunks with a message, base:allocation', async () => {
      const c = await Raw.connect(sock);
      await c.greet();
      c.option(9, Buffer.concat([u32(1), Buffer.from('d'), u32(0)])); // meta contexts before structured replies
      assert.equal((await c.optionReply()).type, 0x80000003);
      c.option(8);
      assert.equal((await c.optionReply()).type, 1);
      c.option(9, Buffer.concat([u32(1), Buffer.from('d'), u32(0)]));
      let r = await c.optionReply();
      assert.equal(r.type, 4);
      assert.equal(r.data.subarray(4).toString(), 'base:allocation');
      assert.equal((await c.optionReply()).type, 1);
      c.option(10, Buffer.concat([u32(1), Buffer.from('d'), u32(2), u32(15), Buffer.from('base:allocation'), u32(7), Buffer.from('x-nope:')]));
      r = await c.optionReply();
      assert.equal(r.type, 4);
      const id = r.data.readUInt32BE(0);
      assert.equal((await c.optionReply()).type, 1);
      await c.go('d');

      c.request(0, 1, 4096, 8192);
      let k = await c.structuredChunk();
      assert.deepEqual([k.cookie, k.type, k.flags & 1], [1, 1, 1]);
      assert.equal(Number(k.payload.readBigUInt64BE(0)), 4096);
      assert.ok(k.payload.subarray(8).equals(img.subarray(4096, 12288)));

      c.request(0, 2, SIZE, 1);
      k = await c.structuredChunk();
      assert.deepEqual([k.cookie, k.type, k.flags & 1], [2, 0x8001, 1]);
      assert.equal(k.payload.readUInt32BE(0), 22);
      assert.match(k.payload.subarray(6, 6 + k.payload.readUInt16BE(4)).toString(), /beyond the end of the export/);

      c.request(0, 3, 0, 40 * MiB);
      k = await c.structuredChunk();
      assert.deepEqual([k.cookie, k.type, k.payload.readUInt32BE(0)], [3, 0x8001, 75], 'EOVERFLOW');

      c.request(7, 4, 0, SIZE);
      k = await c.structuredChunk();
      assert.deepEqual([k.cookie, k.type, k.flags & 1], [4, 5, 1]);
      assert.equal(k.payload.readUInt32BE(0), id);
      // Zero chunks are holes, the rest data; the extents cover the disk and agree with the image.
      let at = 0;
      for (let o = 4; o < k.payload.length; o += 8) {
        const len = k.payload.readUInt32BE(o);
        const st = k.payload.readUInt32BE(o + 4);
        if (st === 3) assert.ok(img.subarray(at, at + len).every((x) => x === 0), `hole at ${at} reads as zeros`);
        else assert.equal(st, 0);
        at += len;
      }
      assert.equal(at, SIZE);
      c.request(2, 5, 0, 0);
      await c.closed;
    });

    it('NBD_OPT_EXPORT_NAME: the old way in works; an unknown name is a disconnect', async () => {
      const c = await Raw.connect(sock);
      await c.greet(1); // without NO_ZEROES: 124 zero bytes follow size and flags
      c.option(1, Buffer.from('d'));
      const reply = await c.read(8 + 2 + 124);
      assert.equal(Number(reply.readBigUInt64BE(0)), SIZE);
      assert.ok(reply.subarray(10).every((x) => x === 0));
      c.request(0, 1, 0, 512);
      const x = await c.simpleReply(() => 512);
      assert.ok(x.data.equals(img.subarray(0, 512)));
      c.destroy();

      const c2 = await Raw.connect(sock);
      await c2.greet();
      c2.option(1, Buffer.from('nope'));
      await c2.closed;
      const c3 = await Raw.connect(sock);
      await c3.greet(0x10); // unknown client flag
      await c3.closed;
      await stillServes();
    });

    it('a write longer than the maximum payload is a disconnect, not 2 GiB buffered', async () => {
      const c = await Raw.connect(sock);
      await c.greet();
      await c.go('d');
      c.request(1, 1, 0, 0x7fffffff, 0, Buffer.alloc(4096));
      await c.closed;
      await stillServes();
      assert.match(s.stderr(), /sent a write of 2147483647 bytes, more than the maximum of 33554432; disconnected it/);
    });
  });

  describe('bad input and stopping', () => {
    const locks = () => listFiles(path.join(repo, 'locks'));

    for (const [what, args, re] of [
      ['an unknown set', ['--set', 'nope', '--disk', 'd'], /^vmbkp: error: set nope has no generations in /],
      ['an unknown generation', ['--set', 's', '--generation', '9', '--disk', 'd'], /^vmbkp: error: set s has no generation 9$/],
      ['a bad generation', ['--set', 's', '--generation', 'last', '--disk', 'd'], /^vmbkp: error: generation "last" is invalid/],
      ['an unknown disk', ['--set', 's', '--disk', 'sdz'], /^vmbkp: error: set s generation 2 has no disk sdz \(it has: d\)$/],
      ['a bad listen address', ['--set', 's', '--disk', 'd', '--listen', 'udp:1.2.3.4:5'], /^vmbkp: error: --listen "udp:1\.2\.3\.4:5" is not an address/],
    ] as const) {
      it(`${what}: one line, exit 2, no lock left`, async () => {
        const r = await vmbkp(['serve', '--repo', repo, ...args]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(oneLine(r.stderr), re);
        assert.equal(r.stdout, '');
        assert.deepEqual(await locks(), []);
      });
    }

    it('a socket path that is taken: exit 1 naming it', async () => {
      const taken = file('taken.sock');
      await fs.writeFile(taken, '');
      const r = await vmbkp(['serve', ...common(), '--listen', `unix:${taken}`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: listening on unix:${esc(taken)} failed: EADDRINUSE`));
      assert.deepEqual(await locks(), []);
    });

    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`holds a shared lock while serving (gc is refused); ${signal} stops it with exit 0 and releases it`, async () => {
        const s = await startServe(common());
        const sock = socketOf(s.info.uri);
        assert.equal((await locks()).length, 1);
        const gc = await vmbkp(['gc', '--repo', repo]);
        assert.equal(gc.code, 4, gc.stderr);
        assert.match(oneLine(gc.stderr), /locked by serve of s/);
        // A client connected at the time does not keep the server from stopping.
        const c = await NbdClient.connect(parseNbdUri(s.info.uri));
        await c.read(0, 4096);
        const r = await s.stop(signal);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.signal, null);
        assert.deepEqual(await locks(), []);
        assert.equal(existsSync(path.dirname(sock)), false, 'the private socket directory is removed');
        await assert.rejects(c.read(0, 4096));
        ok(await vmbkp(['gc', '--repo', repo]), 'gc after the server stopped');
      });
    }
  });
});

describe('the write overlay (unit: a base in memory)', () => {
  it('random writes, zeroing and trims over an odd-sized base read back like a plain buffer; the base is untouched', async () => {
    const { dir, cleanup } = await tempDir('vmbkp-overlay-');
    const size = 10 * MiB + 12_345; // the last 4 KiB block is short
    const baseBytes = randomBytes(size);
    const pristine = Buffer.from(baseBytes);
    const base: ExportBackend = { size, writable: false, read: async (o, into) => { baseBytes.copy(into, 0, o, o + into.length); } };
    const o = await OverlayExport.create(base, dir);
    const model = Buffer.from(baseBytes);
    // A deterministic sequence of operations (seeded, so a failure can be replayed).
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    try {
      assert.deepEqual(await fs.readdir(dir), [], 'the overlay file is unlinked once open');
      for (let k = 0; k < 400; k++) {
        const at = k % 50 === 0 ? size - 1 - rnd(9000) : rnd(size);
        const n = 1 + rnd(Math.min(size - at, k % 7 === 0 ? 3 * MiB : 20_000));
        const op = rnd(10);
        if (op < 6) {
          const data = randomBytes(n);
          await o.write(at, data);
          data.copy(model, at);
        } else if (op < 8) {
          await o.zero(at, n);
          model.fill(0, at, at + n);
        } else if (op < 9) {
          await o.trim(at, n);
          // Trim zeroes the whole 4 KiB blocks inside the range (the last block counts as whole when the range reaches the end).
          const first = Math.ceil(at / 4096) * 4096;
          const end = at + n === size ? size : Math.floor((at + n) / 4096) * 4096;
          if (first < end) model.fill(0, first, end);
        } else {
          const b = Buffer.alloc(n, 0x5a);
          await o.read(at, b);
          assert.ok(b.equals(model.subarray(at, at + n)), `read ${n} at ${at} after ${k} operations`);
        }
      }
      const all = Buffer.alloc(size, 0x5a);
      await o.read(0, all);
      assert.ok(all.equals(model), 'the whole overlay reads as the model');
      assert.ok(baseBytes.equals(pristine), 'the base was never written');
      const extents = await o.blockStatus(0, size);
      assert.equal(extents.reduce((n, e) => n + e.length, 0), size);
    } finally {
      await o.close();
      await cleanup();
    }
  });
});
