/** The NBD client against real nbdkit servers, including ones made to misbehave. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BASE_ALLOCATION, NbdClient } from '../src/nbd/client.js';
import { StateFlag, TransmissionFlag } from '../src/nbd/constants.js';
import { NbdProtocolError, NbdServerError } from '../src/nbd/errors.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { startNbdkit, tempDir } from './helpers.js';

describe('NBD client against nbdkit memory', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startNbdkit>>;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    server = await startNbdkit(dir, ['memory', '64M']);
  });
  after(async () => { await server.stop(); await cleanup(); });

  it('negotiates size, flags, structured replies and base:allocation', async () => {
    const c = await NbdClient.connect(parseNbdUri(server.uri), { metaContexts: [BASE_ALLOCATION] });
    assert.equal(c.size, 64 * 1024 * 1024);
    assert.equal(c.info.structuredReplies, true);
    assert.ok(c.info.metaContexts.has(BASE_ALLOCATION));
    assert.ok(c.can(TransmissionFlag.SEND_FLUSH));
    assert.equal(c.readOnly, false);
    await c.close();
  });

  it('writes, reads back, zeroes, trims and flushes, many requests in flight', async () => {
    const c = await NbdClient.connect(parseNbdUri(server.uri), { metaContexts: [BASE_ALLOCATION], maxInFlight: 8 });
    const blocks = Array.from({ length: 32 }, () => randomBytes(128 * 1024));
    await Promise.all(blocks.map((b, i) => c.write(i * 1024 * 1024, b)));
    const back = await Promise.all(blocks.map((_, i) => c.read(i * 1024 * 1024, 128 * 1024)));
    back.forEach((b, i) => assert.deepEqual(b, blocks[i]));
    await c.writeZeroes(0, 64 * 1024);
    assert.deepEqual(await c.read(0, 64 * 1024), Buffer.alloc(64 * 1024));
    assert.deepEqual((await c.read(64 * 1024, 64 * 1024)), blocks[0]!.subarray(64 * 1024));
    await c.trim(2 * 1024 * 1024, 128 * 1024);
    await c.flush();
    await c.close();
  });

  it('block status reports holes and data of base:allocation', async () => {
    const c = await NbdClient.connect(parseNbdUri(server.uri), { metaContexts: [BASE_ALLOCATION] });
    await c.write(40 * 1024 * 1024, randomBytes(1024 * 1024));
    const ext = await c.blockStatus(BASE_ALLOCATION, 39 * 1024 * 1024, 3 * 1024 * 1024);
    assert.ok(ext.length >= 2);
    assert.ok(ext[0]!.flags & StateFlag.HOLE, 'the first MiB is a hole');
    let o = 39 * 1024 * 1024;
    const dataAt = ext.findIndex((e) => { const here = o; o += e.length; return here === 40 * 1024 * 1024; });
    assert.ok(dataAt > 0 && (ext[dataAt]!.flags & StateFlag.HOLE) === 0, JSON.stringify(ext));
    await c.close();
  });

  it('a request outside the export is refused before it is sent', async () => {
    const c = await NbdClient.connect(parseNbdUri(server.uri));
    await assert.rejects(c.read(64 * 1024 * 1024 - 10, 20), /outside the export/);
    await c.close();
  });

  it('an unknown export is a typed error naming the server answer', async () => {
    const s = await startNbdkit(dir, ['--filter=exportname', 'memory', '1M', 'exportname=only', 'exportname-strict=true'], 'strict');
    try {
      await assert.rejects(NbdClient.connect(parseNbdUri(`nbd+unix:///other?socket=${s.socket}`)),
        (e: Error) => e instanceof NbdServerError && /NBD_REP_ERR/.test(e.nbdError) && /export "other"/.test(e.message));
    } finally {
      await s.stop();
    }
  });
});

describe('NBD export listing', () => {
  it('NBD_OPT_LIST returns the names the server offers', async () => {
    const { dir, cleanup } = await tempDir();
    const s = await startNbdkit(dir, ['--filter=exportname', 'memory', '1M', 'exportname=disk-a', 'exportname=disk-b', 'exportname-list=explicit']);
    try {
      assert.deepEqual((await NbdClient.listExports(parseNbdUri(s.uri))).sort(), ['disk-a', 'disk-b']);
    } finally {
      await s.stop();
      await cleanup();
    }
  });
});

describe('NBD client against misbehaving servers', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => { ({ dir, cleanup } = await tempDir()); });
  after(() => cleanup());

  it('server error replies become typed errors carrying the NBD error name', async () => {
    const s = await startNbdkit(dir, ['--filter=error', 'memory', '4M', 'error=EIO', 'error-pread-rate=1'], 'eio');
    try {
      const c = await NbdClient.connect(parseNbdUri(s.uri));
      await assert.rejects(c.read(0, 4096), (e: Error) => e instanceof NbdServerError && e.nbdError === 'EIO' && /read of 4096 bytes at offset 0/.test(e.message));
      // The connection stays usable after an error reply.
      await c.write(0, Buffer.alloc(4096, 1));
      await c.close();
    } finally {
      await s.stop();
    }
  });

  it('a server that stops answering fails the request within the timeout', async () => {
    const s = await startNbdkit(dir, ['--filter=delay', 'memory', '4M', 'rdelay=30'], 'slow');
    try {
      const c = await NbdClient.connect(parseNbdUri(s.uri), { timeoutMs: 500 });
      const t0 = Date.now();
      await assert.rejects(c.read(0, 4096), (e: Error) => e instanceof NbdProtocolError && /no answer in 500 ms/.test(e.message));
      assert.ok(Date.now() - t0 < 10_000);
      await assert.rejects(c.read(0, 4096), NbdProtocolError, 'the connection stays failed');
    } finally {
      await s.stop();
    }
  });
});

describe('NBD URIs', () => {
  it('parse TCP and Unix forms', () => {
    assert.deepEqual(parseNbdUri('nbd://example.com/disk'), { transport: 'tcp', host: 'example.com', port: 10809, exportName: 'disk', tls: false });
    assert.deepEqual(parseNbdUri('nbd://[::1]:10900/'), { transport: 'tcp', host: '::1', port: 10900, exportName: '', tls: false });
    assert.deepEqual(parseNbdUri('nbd+unix:///e%20x?socket=/tmp/s.sock'), { transport: 'unix', socket: '/tmp/s.sock', exportName: 'e x', tls: false });
    assert.equal(parseNbdUri('nbds://h/x').tls, true);
    assert.throws(() => parseNbdUri('nbd+unix:///x'), /socket=PATH/);
    assert.throws(() => parseNbdUri('http://x/'), /not an NBD URI/);
  });
});
