/**
 * The cryptography of encrypted repositories, piece by piece, in process: the AEAD framing,
 * the blob codec (ids, sealing bound to id, type, compression and length), sealed metadata
 * objects and pack tables, key objects, and the config's authenticator. The acceptance
 * tests (encryption.test.ts) show the same through the CLI.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RepositoryDamagedError, UsageError, WrongPasswordError } from '../src/errors.js';
import { BlobCodec, type BlobHeader, decodeVerified, storedBound } from '../src/repository/blob-codec.js';
import { checkConfigAuthenticator, encodeConfig, newConfig, readConfig } from '../src/repository/config.js';
import { sha256 } from '../src/repository/digest.js';
import { SEAL_OVERHEAD, deriveKeys, newMasterKey, open, seal } from '../src/repository/encryption.js';
import { type KdfParams, kdfForMemory, listKeys, parseKey, unlockMasterKey, unwrapKey, writeKey } from '../src/repository/keys.js';
import { CONFIG, keyName } from '../src/repository/layout.js';
import { sealedObjects } from '../src/repository/object-codec.js';
import { BlobType, Compression, PackBuilder, decodePackTrailer } from '../src/repository/pack.js';
import { MemoryBackend } from '../src/storage/memory.js';

/** The cheapest scrypt the key format allows us to ask for: these tests are about bytes, not cost. */
const CHEAP: KdfParams = kdfForMemory(1);

const keysA = deriveKeys(newMasterKey());
const keysB = deriveKeys(newMasterKey());

/** Every single-byte change of `buf`, one at a time (each bit of the byte flipped). */
function* flipped(buf: Buffer): Generator<[number, Buffer]> {
  for (let i = 0; i < buf.length; i++) {
    const b = Buffer.from(buf);
    b[i]! ^= 0xff;
    yield [i, b];
  }
}

describe('AEAD framing (encryption.ts)', () => {
  const ad = Buffer.from('some object');

  it('seal then open gives the plain bytes back; sealed = nonce | ciphertext | tag', () => {
    for (const plain of [Buffer.alloc(0), Buffer.from('x'), randomBytes(70_000)]) {
      const sealed = seal(keysA.data, ad, plain);
      assert.equal(sealed.length, plain.length + SEAL_OVERHEAD);
      assert.deepEqual(open(keysA.data, ad, sealed), plain);
    }
  });

  it('sealing the same bytes twice gives other bytes (a fresh nonce each time)', () => {
    const plain = Buffer.from('the same plain text');
    assert.notDeepEqual(seal(keysA.data, ad, plain), seal(keysA.data, ad, plain));
  });

  it('a changed byte anywhere (nonce, ciphertext or tag) does not open', () => {
    const sealed = seal(keysA.data, ad, Buffer.from('forty bytes of plain text, or about that'));
    let n = 0;
    for (const [i, bad] of flipped(sealed)) {
      assert.throws(() => open(keysA.data, ad, bad), /authentication failed/, `byte ${i} changed`);
      n++;
    }
    assert.equal(n, sealed.length);
    assert.throws(() => open(keysA.data, ad, sealed.subarray(0, sealed.length - 1)), /authentication failed/, 'truncated');
    assert.throws(() => open(keysA.data, ad, sealed.subarray(0, SEAL_OVERHEAD - 1)), /shorter than nonce and tag/);
  });

  it('other associated data, or another key, does not open', () => {
    const sealed = seal(keysA.data, ad, Buffer.from('plain'));
    assert.throws(() => open(keysA.data, Buffer.from('some object '), sealed), /authentication failed/);
    assert.throws(() => open(keysA.data, Buffer.alloc(0), sealed), /authentication failed/);
    assert.throws(() => open(keysB.data, ad, sealed), /authentication failed/);
    assert.throws(() => open(keysA.id, ad, sealed), /authentication failed/, 'a key of another purpose');
  });

  it('derived keys differ from each other and between master keys', () => {
    const all = [keysA.data, keysA.id, keysA.names, keysA.config, keysB.data, keysB.id, keysB.names, keysB.config].map((k) => k.toString('hex'));
    assert.equal(new Set(all).size, all.length);
    for (const k of [keysA.data, keysA.id]) assert.equal(k.length, 32);
  });
});

describe('blob codec, encrypted (blob-codec.ts)', () => {
  const codec = new BlobCodec(1, keysA);
  const text = Buffer.from('a line of text that compresses well\n'.repeat(4000));
  const random = randomBytes(256 * 1024);

  const header = (c: BlobCodec, plain: Buffer, compression: Compression, over: Partial<BlobHeader> = {}): BlobHeader =>
    ({ id: c.id(plain), type: BlobType.Chunk, compression, rawLength: plain.length, ...over });

  it('compressible and incompressible blobs round-trip; neither stores its plain bytes', () => {
    assert.equal(codec.encrypted, true);
    const t = codec.encode(codec.id(text), BlobType.Chunk, text);
    const r = codec.encode(codec.id(random), BlobType.Chunk, random);
    assert.equal(t.compression, Compression.Zstd);
    assert.ok(t.data.length < text.length / 10);
    assert.equal(r.compression, Compression.None);
    assert.equal(r.data.length, random.length + SEAL_OVERHEAD, 'incompressible: sealed as it is');
    assert.ok(r.data.length <= storedBound(random.length));
    assert.equal(r.data.indexOf(random.subarray(1000, 1064)), -1, 'the plain bytes are not in the stored blob');
    assert.equal(t.data.indexOf(text.subarray(0, 36)), -1);
    for (const [e, plain] of [[t, text], [r, random]] as const) {
      const out = Buffer.alloc(plain.length);
      assert.equal(decodeVerified(codec, header(codec, plain, e.compression), e.data, out), undefined);
      assert.deepEqual(out, plain);
    }
  });

  it('a stored blob with any one byte changed does not decode', () => {
    const small = Buffer.from('a small blob, sealed as it is: 0123456789');
    const e = codec.encode(codec.id(small), BlobType.Chunk, small);
    for (const [i, bad] of flipped(e.data)) {
      assert.match(decodeVerified(codec, header(codec, small, e.compression), bad, Buffer.alloc(small.length)) ?? '', /authentication failed/, `byte ${i}`);
    }
  });

  it('a blob sealed for id A does not open as id B, nor with another type, compression or length', () => {
    const a = Buffer.from('blob A '.repeat(100));
    const b = Buffer.from('blob B '.repeat(100));
    const e = codec.encode(codec.id(a), BlobType.Chunk, a);
    const out = Buffer.alloc(a.length);
    assert.equal(decodeVerified(codec, header(codec, a, e.compression), e.data, out), undefined);
    assert.match(decodeVerified(codec, header(codec, a, e.compression, { id: codec.id(b) }), e.data, out) ?? '', /authentication failed/);
    assert.match(decodeVerified(codec, header(codec, a, e.compression, { type: BlobType.IndexPiece }), e.data, out) ?? '', /authentication failed/);
    // Refused before it is opened when the length cannot be that of a plain blob, else by authentication.
    assert.match(decodeVerified(codec, header(codec, a, e.compression === Compression.Zstd ? Compression.None : Compression.Zstd), e.data, out) ?? '', /authentication failed|stored \d+ bytes, expected/);
    assert.match(decodeVerified(codec, header(codec, a, e.compression, { rawLength: a.length + 1 }), e.data, Buffer.alloc(a.length + 1)) ?? '', /authentication failed/);
  });

  it('a blob sealed by another repository does not open, and a plaintext codec does not take it for plain data', () => {
    const e = codec.encode(codec.id(random), BlobType.Chunk, random);
    const other = new BlobCodec(1, keysB);
    assert.match(decodeVerified(other, header(codec, random, e.compression), e.data, Buffer.alloc(random.length)) ?? '', /authentication failed/);
    const plain = new BlobCodec(1);
    assert.notEqual(decodeVerified(plain, header(codec, random, e.compression), e.data, Buffer.alloc(random.length)), undefined);
  });

  it('ids: HMAC, not SHA-256; equal for equal content within a repository (dedup), different between repositories', () => {
    const content = Buffer.from('the same chunk in two repositories');
    const idA = codec.id(content);
    assert.equal(idA.length, 32);
    assert.notDeepEqual(idA, createHash('sha256').update(content).digest());
    assert.deepEqual(codec.id(Buffer.from(content)), idA, 'dedup within one repository');
    assert.deepEqual(new BlobCodec(3, keysA).id(content), idA, 'the compression level does not change ids');
    assert.notDeepEqual(new BlobCodec(1, keysB).id(content), idA);
    assert.notDeepEqual(codec.id(Buffer.from('the same chunk in two repositories.')), idA);
    assert.deepEqual(new BlobCodec(1).id(content), createHash('sha256').update(content).digest(), 'plaintext repositories keep SHA-256');
  });
});

describe('sealed metadata objects and pack tables', () => {
  const objects = sealedObjects(keysA.data);

  it('an object opens only under the name it was sealed for, with the key it was sealed with', () => {
    const plain = Buffer.from('{"a manifest":1}');
    const stored = objects.seal('generations/aa/00000001', plain);
    assert.equal(stored.indexOf(plain), -1);
    assert.deepEqual(objects.open('x', 'generations/aa/00000001', stored), plain);
    assert.throws(() => objects.open('the object', 'generations/aa/00000002', stored), (err: unknown) => err instanceof RepositoryDamagedError && /^reading the object failed: authentication failed/.test(err.message));
    assert.throws(() => sealedObjects(keysB.data).open('x', 'generations/aa/00000001', stored), RepositoryDamagedError);
    for (const [i, bad] of flipped(stored)) assert.throws(() => objects.open('x', 'generations/aa/00000001', bad), RepositoryDamagedError, `byte ${i}`);
  });

  it('a sealed pack table round-trips, and does not open with another key, damaged, or as a plaintext pack', () => {
    const codec = new BlobCodec(1, keysA);
    const builder = new PackBuilder(Buffer.alloc(1 << 20), objects);
    const blobs = [randomBytes(1000), Buffer.from('text '.repeat(2000))];
    for (const plain of blobs) {
      const id = codec.id(plain);
      const e = codec.encode(id, BlobType.Chunk, plain);
      builder.add(id, BlobType.Chunk, e.compression, plain.length, e.data);
    }
    const p = builder.finish();
    const file = Buffer.concat(p.parts);
    assert.equal(sha256(file).toString('hex'), p.id);
    assert.equal(file.subarray(file.length - 8).toString('latin1'), 'VMBKPCK2');
    const entries = decodePackTrailer(file, 'p', objects);
    assert.deepEqual(entries.map((e) => [e.digest.toString('hex'), e.offset, e.length]), p.entries.map((e) => [e.digest.toString('hex'), e.offset, e.length]));
    for (const id of entries.map((e) => e.digest)) assert.equal(file.indexOf(id), -1, 'blob ids are not readable in the pack');
    assert.throws(() => decodePackTrailer(file, 'p', sealedObjects(keysB.data)), /reading pack p failed: authentication failed/);
    assert.throws(() => decodePackTrailer(file, 'p'), /no pack trailer of this repository/);
    const tableStart = entries.at(-1)!.offset + entries.at(-1)!.length;
    for (const at of [tableStart, tableStart + 20, file.length - 13, file.length - 12, file.length - 9, file.length - 1]) {
      const bad = Buffer.from(file);
      bad[at]! ^= 0xff;
      assert.throws(() => decodePackTrailer(bad, 'p', objects), RepositoryDamagedError, `trailer byte ${at - tableStart}`);
    }
  });
});

describe('key objects (keys.ts)', () => {
  const REPO = '8c0f3c1e-5f0b-4d8e-9a51-2b7f3f0e9d11';

  it('the right password unwraps the master key; a wrong one gives undefined; unlocking with it is WrongPasswordError', async () => {
    const backend = new MemoryBackend();
    const master = newMasterKey();
    const key = await writeKey(backend, REPO, master, 'right password', CHEAP, 'ops');
    assert.equal(key.name, keyName(key.id));
    assert.equal(key.id, sha256(await backend.get(key.name)).toString('hex'), 'named by its content');
    const got = await unwrapKey(key, 'right password');
    assert.deepEqual(got, master);
    assert.equal(await unwrapKey(key, 'wrong password'), undefined);
    assert.equal(await unwrapKey(key, 'right password '), undefined);
    await assert.rejects(unlockMasterKey(backend, REPO, 'wrong password'), WrongPasswordError);
    assert.deepEqual((await unlockMasterKey(backend, REPO, 'right password')).master, master);
    const stored = (await backend.get(key.name)).toString('utf8');
    assert.ok(!stored.includes(master.encryption.toString('base64')) && !stored.includes(master.encryption.toString('hex')), 'the key object does not hold the master key in the clear');
  });

  it('two keys wrap one master key; either password opens it; a key of another repository is not tried', async () => {
    const backend = new MemoryBackend();
    const master = newMasterKey();
    await writeKey(backend, REPO, master, 'first', CHEAP);
    await writeKey(backend, REPO, master, 'second', CHEAP);
    await writeKey(backend, 'another-repository', newMasterKey(), 'third', CHEAP);
    assert.deepEqual((await unlockMasterKey(backend, REPO, 'second')).master, master);
    assert.deepEqual((await unlockMasterKey(backend, REPO, 'first')).master, master);
    await assert.rejects(unlockMasterKey(backend, REPO, 'third'), /opens none of its 2 keys/);
  });

  it('a key object with any one byte changed is damaged (named), not a wrong password', async () => {
    const backend = new MemoryBackend();
    const key = await writeKey(backend, REPO, newMasterKey(), 'pw', CHEAP);
    const stored = await backend.get(key.name);
    const offsets = [0, 1, stored.indexOf('"wrapped"') + 14, stored.indexOf('"salt"') + 10, stored.length >> 1, stored.length - 2, stored.length - 1];
    for (const at of offsets) {
      const bad = Buffer.from(stored);
      bad[at]! ^= 0xff;
      assert.throws(() => parseKey(key.name, bad), (err: unknown) => err instanceof RepositoryDamagedError
        && err.message === `key ${key.name} is damaged: content does not match its name`, `byte ${at}`);
    }
    // Listing reports it to the caller instead of failing, so verify can name it and go on.
    const damaged = new MemoryBackend();
    const bad = Buffer.from(stored);
    bad[stored.length >> 1]! ^= 0xff;
    await damaged.put(key.name, bad);
    const seen: string[] = [];
    assert.deepEqual(await listKeys(damaged, (err) => seen.push(err.message)), []);
    assert.deepEqual(seen, [`key ${key.name} is damaged: content does not match its name`]);
    await assert.rejects(listKeys(damaged), RepositoryDamagedError);
    await assert.rejects(unlockMasterKey(damaged, REPO, 'pw'), (err: unknown) => err instanceof RepositoryDamagedError && /no readable key object/.test(err.message));
  });

  it('a key whose wrapped master key was changed, and renamed to match, does not open: it is not taken for a master key', async () => {
    const backend = new MemoryBackend();
    const key = await writeKey(backend, REPO, newMasterKey(), 'pw', CHEAP);
    const record = { ...key.record, wrapped: Buffer.from(Buffer.from(key.record.wrapped, 'base64').map((b, i) => (i === 20 ? b ^ 1 : b))).toString('base64') };
    const raw = Buffer.from(JSON.stringify(record));
    const forged = parseKey(keyName(sha256(raw).toString('hex')), raw);
    assert.equal(await unwrapKey(forged, 'pw'), undefined);
  });

  /** A key object with this record, named by its content so that only its fields can be wrong. */
  function named(record: unknown): [string, Buffer] {
    const raw = Buffer.from(JSON.stringify(record));
    return [keyName(sha256(raw).toString('hex')), raw];
  }

  it('KDF parameters beyond the limits are refused as damage before any memory is asked for', async () => {
    const backend = new MemoryBackend();
    const key = await writeKey(backend, REPO, newMasterKey(), 'pw', CHEAP);
    const withKdf = (kdf: object) => ({ ...key.record, kdf: { ...key.record.kdf, ...kdf } });
    assert.doesNotThrow(() => parseKey(...named(withKdf({}))));
    for (const [kdf, why] of [
      [{ N: 2 ** 23, r: 8 }, /asks for more memory than a key may/], // 8 GiB
      [{ N: 2 ** 20, r: 64 }, /asks for more memory than a key may/],
      [{ p: 17 }, /kdf\.p/],
      [{ r: 65 }, /kdf\.r/],
      [{ N: 3000 }, /not a power of two/],
      [{ N: 1 }, /kdf\.N/],
      [{ name: 'argon2id' }, /kdf\.name/],
    ] as const) {
      assert.throws(() => parseKey(...named(withKdf(kdf))), (err: unknown) => err instanceof RepositoryDamagedError && why.test(err.message), JSON.stringify(kdf));
    }
    assert.throws(() => parseKey(...named({ ...key.record, extra: 1 })), RepositoryDamagedError, 'unknown fields');
    assert.throws(() => parseKey(...named({ ...key.record, cipher: 'aes-128-gcm' })), RepositoryDamagedError);
    assert.throws(() => kdfForMemory(8192), UsageError);
    assert.throws(() => kdfForMemory(3), UsageError);
    assert.deepEqual(kdfForMemory(128), { N: 2 ** 17, r: 8, p: 1 });
  });
});

describe('config authenticator (config.ts)', () => {
  it('an encrypted config is version 2 and its authenticator matches its keys only', () => {
    const c = newConfig(256 * 1024, keysA);
    assert.equal(c.version, 2);
    assert.equal(c.encryption?.cipher, 'aes-256-gcm');
    checkConfigAuthenticator(c, keysA, 'here');
    assert.throws(() => checkConfigAuthenticator(c, keysB, 'here'), (err: unknown) => err instanceof RepositoryDamagedError && /authenticator does not match/.test(err.message));
  });

  it('every authenticated field is covered: changing any is refused', () => {
    const c = newConfig(256 * 1024, keysA);
    for (const change of [{ chunkSize: 65536 }, { chunkSize: 1024 * 1024 }, { id: '00000000-0000-4000-8000-000000000000' }, { created: '2020-01-01T00:00:00.000Z' }, { indexPieceEntries: 1024 }]) {
      assert.throws(() => checkConfigAuthenticator({ ...c, ...change }, keysA, 'here'), RepositoryDamagedError, JSON.stringify(change));
    }
    const forged = { ...c, encryption: { ...c.encryption!, authenticator: '0'.repeat(64) } };
    assert.throws(() => checkConfigAuthenticator(forged, keysA, 'here'), RepositoryDamagedError);
  });

  it('readConfig refuses a version 2 config without encryption and a version 1 config with it', async () => {
    const c = newConfig(256 * 1024, keysA);
    const { encryption, ...plainFields } = c;
    for (const bad of [{ ...plainFields }, { ...c, version: 1 }, { ...newConfig(), encryption }]) {
      const backend = new MemoryBackend();
      await backend.put(CONFIG, encodeConfig(bad as typeof c));
      await assert.rejects(readConfig(backend), (err: unknown) => err instanceof RepositoryDamagedError && /version 2 \(and only it\) has encryption/.test(err.message), JSON.stringify(bad));
    }
    const backend = new MemoryBackend();
    await backend.put(CONFIG, encodeConfig(c));
    assert.deepEqual(await readConfig(backend), c);
  });
});
