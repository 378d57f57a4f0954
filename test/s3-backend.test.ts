/**
 * S3Backend.put against the real S3 server (scripts/s3.mjs): a SHA-256 the caller knows
 * signs the payload (the SDK does not hash it again) and the server checks it; a view of a
 * larger buffer is sent as it is; parts are joined; the write-once answer is the same either way.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, it } from 'node:test';
import { AlreadyExistsError, IoError } from '../src/errors.js';
import { S3Backend } from '../src/storage/s3.js';
import { type S3Server, s3Bucket, startS3 } from './s3-server.js';

let server: S3Server;
let backend: S3Backend;
before(async () => {
  server = await startS3();
  const bucket = await s3Bucket(server.client(), 'backend');
  const { accessKeyId, secretAccessKey, region } = server.info;
  backend = new S3Backend(`s3:${server.info.endpoint}/${bucket}/repo`, { region, credentials: { accessKeyId, secretAccessKey }, retry: { attempts: 1, baseMs: 1, capMs: 1 } });
});
after(async () => {
  backend?.destroy();
  await server.stop();
});

const sha256 = (...parts: Uint8Array[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

it('puts a view of a larger buffer, signed with the SHA-256 the caller gives, and reads it back whole and by range', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  randomBytes(64 * 1024).copy(big, 1000);
  // A view into a larger buffer, as a pack is a view of its builder's buffer.
  const pack = big.subarray(1000, big.length - 5);
  await backend.put('data/ab/packed', [pack], { sha256: sha256(pack) });
  assert.ok((await backend.get('data/ab/packed')).equals(pack));
  assert.ok((await backend.get('data/ab/packed', { offset: 5000, length: 100 })).equals(pack.subarray(5000, 5100)));
  const trailer = Buffer.from('trailer of the pack');
  await backend.put('data/ab/two-parts', [pack, trailer], { sha256: sha256(pack, trailer) });
  assert.ok((await backend.get('data/ab/two-parts')).equals(Buffer.concat([pack, trailer])));
  assert.equal(backend.counters().retries, 0);
});

it('the server refuses a payload whose SHA-256 is not the one given, and stores nothing', async () => {
  const data = Buffer.from('what is sent');
  await assert.rejects(backend.put('data/cd/wrong', [data, Buffer.from('!')], { sha256: sha256(Buffer.from('something else')) }),
    (e) => e instanceof IoError && /XAmzContentSHA256Mismatch|400/.test(e.message));
  assert.equal(await backend.stat('data/cd/wrong'), undefined);
  await assert.rejects(backend.put('data/cd/bad', data, { sha256: 'not-a-digest' }), TypeError);
});

it('parts without a SHA-256, a single buffer with or without one: stored as given; a second put of a name is refused', async () => {
  const a = Buffer.from('first part, ');
  const b = Buffer.from('second part');
  await backend.put('index/joined', [a, b]);
  assert.equal((await backend.get('index/joined')).toString(), 'first part, second part');
  await backend.put('index/single', a, { sha256: sha256(a) });
  await backend.put('index/plain', b);
  assert.equal((await backend.get('index/single')).toString(), a.toString());
  assert.equal((await backend.get('index/plain')).toString(), b.toString());
  await assert.rejects(backend.put('index/joined', [b, a], { sha256: sha256(b, a) }), AlreadyExistsError);
});
