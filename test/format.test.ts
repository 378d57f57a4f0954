import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RepositoryDamagedError } from '../src/errors.js';
import { BlobCodec, decodeVerified } from '../src/repository/blob-codec.js';
import { sha256 } from '../src/repository/digest.js';
import { type BlobLocation, decodeIndexFile, encodeIndexFile } from '../src/repository/index-file.js';
import { BlobType, Compression, PackBuilder, decodePackTrailer, packTrailerBound } from '../src/repository/pack.js';
import { putPack } from '../src/repository/pack-writer.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir } from './helpers.js';
import { packName } from '../src/repository/layout.js';
import { parseGenerationName, generationName, checkSetName } from '../src/repository/layout.js';

function packOf(blobs: Buffer[]) {
  const b = new PackBuilder(Buffer.alloc(1 << 20));
  for (const blob of blobs) b.add(createHash('sha256').update(blob).digest(), BlobType.Chunk, Compression.None, blob.length, blob);
  return b.finish();
}

describe('pack format', () => {
  it('a pack lists its blobs in its trailer, and is named by its content', () => {
    const blobs = [randomBytes(100), randomBytes(5000), Buffer.alloc(0)];
    const p = packOf(blobs);
    const file = Buffer.concat(p.parts);
    assert.equal(file.length, p.size);
    assert.equal(createHash('sha256').update(file).digest('hex'), p.id);
    const entries = decodePackTrailer(file, 'p');
    assert.deepEqual(entries.map((e) => [e.offset, e.length]), [[0, 100], [100, 5000], [5100, 0]]);
    for (const [i, e] of entries.entries()) assert.deepEqual(file.subarray(e.offset, e.offset + e.length), blobs[i]);
  });

  it('a truncated or foreign file is reported as damaged, not misread', () => {
    const file = Buffer.concat(packOf([randomBytes(300)]).parts);
    assert.throws(() => decodePackTrailer(file.subarray(0, file.length - 1), 'p'), RepositoryDamagedError);
    assert.throws(() => decodePackTrailer(Buffer.from('hello world, not a pack'), 'p'), RepositoryDamagedError);
    const lying = Buffer.from(file);
    lying.writeUInt32LE(99, lying.length - 12); // entry count
    assert.throws(() => decodePackTrailer(lying, 'p'), RepositoryDamagedError);
  });

  it('a pack is one piece of its builder\'s buffer when the trailer has room there (fitsWithTrailer keeps it), else two', () => {
    const blob = randomBytes(1000);
    for (const room of [true, false]) {
      const buffer = Buffer.alloc(room ? 1000 + packTrailerBound(1, false) : 1000 + packTrailerBound(1, false) - 1);
      const b = new PackBuilder(buffer);
      assert.equal(b.fitsWithTrailer(blob.length), room);
      b.add(Buffer.alloc(32, 7), BlobType.Chunk, Compression.None, blob.length, blob);
      const p = b.finish();
      assert.equal(p.parts.length, room ? 1 : 2);
      if (room) assert.equal(p.parts[0]!.buffer, buffer.buffer, 'a view of the builder\'s buffer, not a copy');
      const file = Buffer.concat(p.parts);
      assert.equal(file.length, p.size);
      assert.equal(createHash('sha256').update(file).digest('hex'), p.id);
      assert.equal(decodePackTrailer(file, 'p').length, 1);
    }
  });

  it('the builder refuses a blob that does not fit', () => {
    const b = new PackBuilder(Buffer.alloc(10));
    assert.equal(b.fits(11), false);
    assert.throws(() => b.add(Buffer.alloc(32), BlobType.Chunk, Compression.None, 11, Buffer.alloc(11)), RangeError);
  });
});

describe('storing packs', () => {
  it('a pack whose name exists with the same content is the same pack; one with other content is refused and kept (write-once)', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const backend = new LocalBackend(dir);
      const p = packOf([randomBytes(1000), randomBytes(2000)]);
      await putPack(backend, p);
      await putPack(backend, p); // left by an interrupted run: not an error
      const name = packName(p.id);
      const damaged = await backend.get(name);
      damaged[10]! ^= 1;
      await backend.remove(name);
      await backend.put(name, damaged);
      await assert.rejects(putPack(backend, p), (err: unknown) => err instanceof RepositoryDamagedError
        && err.message.includes(`storing ${name} in ${dir} refused: an object of that name exists with other content (SHA-256 ${sha256(damaged).toString('hex')}, the new one is ${p.id})`));
      assert.deepEqual(await backend.get(name), damaged, 'the existing object is left as it was');
    } finally {
      await cleanup();
    }
  });
});

describe('index file format', () => {
  it('round-trips every field', () => {
    const p1 = packOf([randomBytes(10), randomBytes(20)]);
    const p2 = packOf([randomBytes(30)]);
    const raw = encodeIndexFile([{ id: p1.id, entries: p1.entries }, { id: p2.id, entries: p2.entries }]);
    const seen: [string, BlobLocation][] = [];
    const packs = decodeIndexFile(raw, 'i', (d, loc) => seen.push([d, loc]));
    assert.deepEqual(packs, [p1.id, p2.id]);
    assert.equal(seen.length, 3);
    assert.equal(seen[2]![1].pack, p2.id);
    assert.equal(seen[1]![1].offset, 10);
    assert.equal(seen[1]![0], p1.entries[1]!.digest.toString('hex'));
  });

  it('rejects bad magic and wrong lengths', () => {
    const p = packOf([randomBytes(10)]);
    const raw = encodeIndexFile([{ id: p.id, entries: p.entries }]);
    assert.throws(() => decodeIndexFile(raw.subarray(0, raw.length - 1), 'i', () => {}), RepositoryDamagedError);
    const bad = Buffer.from(raw);
    bad[0] = 0x41;
    assert.throws(() => decodeIndexFile(bad, 'i', () => {}), RepositoryDamagedError);
  });
});

describe('blob codec', () => {
  it('compresses what shrinks, stores the rest as is, and decodes both', () => {
    const codec = new BlobCodec(3);
    const text = Buffer.from('the quick brown fox '.repeat(5000));
    const random = randomBytes(64 * 1024);
    const t = codec.encode(codec.id(text), BlobType.Chunk, text);
    const r = codec.encode(codec.id(random), BlobType.Chunk, random);
    assert.equal(t.compression, Compression.Zstd);
    assert.ok(t.data.length < text.length / 10);
    assert.equal(r.compression, Compression.None);
    const decode = (compression: Compression, data: Buffer, plain: Buffer, rawLength = plain.length) =>
      decodeVerified(codec, { id: codec.id(plain), type: BlobType.Chunk, compression, rawLength }, data, Buffer.alloc(rawLength));
    assert.equal(decode(t.compression, t.data, text), undefined);
    assert.equal(decode(r.compression, r.data, random), undefined);
    assert.match(decode(Compression.Zstd, t.data, text, text.length + 1) ?? '', /decoded|expected/);
    const broken = Buffer.from(t.data);
    broken[broken.length >> 1]! ^= 0xff;
    assert.notEqual(decode(Compression.Zstd, broken, text), undefined);
  });
});

describe('layout', () => {
  it('generation names sort by number and parse back', () => {
    assert.equal(generationName('web01', 12), 'generations/web01/00000012.json');
    assert.deepEqual(parseGenerationName('generations/web01/00000012.json'), { dir: 'web01', generation: 12 });
    assert.equal(parseGenerationName('generations/web01/12.json'), undefined);
  });
  it('set names cannot escape their directory', () => {
    for (const bad of ['', '..', '.x', 'a/b', '-x', 'x'.repeat(200)]) assert.throws(() => checkSetName(bad), /invalid/);
    checkSetName('web01.example_com-2');
  });
});
