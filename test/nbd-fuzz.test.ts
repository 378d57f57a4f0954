/**
 * Property test of the reply parser: a fake server negotiates correctly, then answers
 * with random bytes, truncated replies, or valid replies with one field corrupted. Every
 * request must settle (resolve, or reject with a typed NBD error) within its timeout;
 * nothing may hang or throw unhandled.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type Server, type Socket, createServer } from 'node:net';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { NbdClient } from '../src/nbd/client.js';
import { IHAVEOPT, NBDMAGIC, OPTION_REPLY_MAGIC, Opt, Rep, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC } from '../src/nbd/constants.js';
import { IoError } from '../src/errors.js';
import { tempDir } from './helpers.js';

const SIZE = 1 << 20;

/** Deterministic bytes from a seed, so a failing case can be replayed. */
function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let o = 0;
  for (let i = 0; o < n; i++) o += createHash('sha256').update(`${seed}:${i}`).digest().copy(out, o);
  return out;
}

function optReply(option: number, type: number, data = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

/** What the server sends for the first request (cookie known), by case number. */
function badReply(seed: number, cookie: Buffer, length: number): Buffer {
  const r = bytes(seed, 64);
  const kind = seed % 6;
  const structured = (type: number, flags: number, payload: Buffer) => {
    const h = Buffer.alloc(20);
    h.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    cookie.copy(h, 8);
    h.writeUInt32BE(payload.length, 16);
    return Buffer.concat([h, payload]);
  };
  switch (kind) {
    case 0: return bytes(seed, 1 + (r[0]! % 60)); // noise
    case 1: { // a valid data chunk cut short
      const full = structured(1, 1, Buffer.concat([Buffer.alloc(8), bytes(seed, length)]));
      return full.subarray(0, r[1]! % full.length);
    }
    case 2: { // a data chunk pointing outside the request
      const p = Buffer.alloc(8 + 16);
      p.writeBigUInt64BE(BigInt(SIZE + (r[2]! << 12)), 0);
      return structured(1, 1, p);
    }
    case 3: { // unknown cookie
      const h = Buffer.alloc(16);
      h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
      h.writeBigUInt64BE(BigInt(r.readUInt32BE(4)) + 1000n, 8);
      return h;
    }
    case 4: { // a hole chunk with a wrong payload size
      return structured(2, 1, bytes(seed, 1 + (r[3]! % 11)));
    }
    default: { // an error chunk with a message length past its payload, then random type values
      const p = Buffer.alloc(6);
      p.writeUInt32BE(5, 0);
      p.writeUInt16BE(200, 4);
      return Buffer.concat([structured(32769, 0, p), structured(r.readUInt16BE(6), 1, bytes(seed + 1, r[8]! % 32))]);
    }
  }
}

let dir: string;
let cleanup: () => Promise<void>;
let server: Server;
let socketPath: string;
let seedFor = 0;
before(async () => {
  ({ dir, cleanup } = await tempDir());
  socketPath = path.join(dir, 'fake.sock');
  server = createServer((s: Socket) => { void serve(s, seedFor); });
  await new Promise<void>((r) => server.listen(socketPath, r));
});
after(async () => { await new Promise((r) => server.close(r)); await cleanup(); });

async function serve(s: Socket, seed: number): Promise<void> {
  s.on('error', () => {});
  let buf = Buffer.alloc(0);
  const need = async (n: number) => {
    while (buf.length < n) {
      const d = await new Promise<Buffer | null>((res) => { s.once('data', res); s.once('close', () => res(null)); });
      if (!d) throw new Error('closed');
      buf = Buffer.concat([buf, d]);
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  try {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(3, 16);
    s.write(hello);
    await need(4);
    for (;;) {
      const h = await need(16);
      const option = h.readUInt32BE(8);
      await need(h.readUInt32BE(12));
      if (option === Opt.GO) {
        const info = Buffer.alloc(12);
        info.writeUInt16BE(0, 0);
        info.writeBigUInt64BE(BigInt(SIZE), 2);
        info.writeUInt16BE(1, 10);
        s.write(Buffer.concat([optReply(option, Rep.INFO, info), optReply(option, Rep.ACK)]));
        break;
      }
      s.write(optReply(option, option === Opt.STRUCTURED_REPLY ? Rep.ACK : 0x80000001));
    }
    const req = await need(28);
    s.write(badReply(seed, req.subarray(8, 16), req.readUInt32BE(24)));
    if (seed % 2 === 0) s.end(); // sometimes hang up, sometimes just stop answering
  } catch {
    s.destroy();
  }
}

it('random, truncated and corrupted replies always settle with a typed error', async () => {
  const outcomes = new Map<string, number>();
  for (let seed = 1; seed <= 120; seed++) {
    seedFor = seed;
    const c = await NbdClient.connect({ transport: 'unix', socket: socketPath, exportName: '', tls: false }, { timeoutMs: 300 });
    const results = await Promise.allSettled([c.read(0, 4096), c.read(4096, 4096)]);
    for (const r of results) {
      assert.equal(r.status, 'rejected', `seed ${seed}: a bad reply was accepted`);
      const e = (r as PromiseRejectedResult).reason as Error;
      assert.ok(e instanceof IoError, `seed ${seed}: ${e?.constructor?.name}: ${e?.message}`);
      outcomes.set(e.constructor.name, (outcomes.get(e.constructor.name) ?? 0) + 1);
    }
    await c.close().catch(() => {});
  }
  assert.ok((outcomes.get('NbdProtocolError') ?? 0) > 0, JSON.stringify([...outcomes]));
});
