/**
 * The project's disk image generator (bench/disk-image.mjs): the same seed gives the same
 * bytes, holes are real holes, every kind of region is there and behaves as its kind should
 * (text compresses, random does not, dup dedupes), and a next generation's changed extents
 * cover exactly the blocks that differ.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import type { ChangedExtent, Region, RegionKind } from '../bench/disk-image.mjs';
import { DISK_IMAGE, diskImage, run, sha256File, tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const CHUNK = 256 * 1024;

describe('disk image generator', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let regions: Region[];
  let image: Buffer;
  let BLOCK: number;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-disk-image-'));
    const gen = await diskImage();
    BLOCK = gen.BLOCK;
    ({ regions } = await gen.make({ out: file('a.img'), size: '64M', seed: 7 }));
    image = await fs.readFile(file('a.img'));
  });
  after(() => cleanup());

  const ofKind = (kind: RegionKind) => regions.filter((r) => r.kind === kind);
  const bytesOf = (r: { start: number; length: number }) => image.subarray(r.start, r.start + r.length);

  it('the same seed and size give the same bytes, through the API and the command', async () => {
    assert.equal(image.length, SIZE);
    const again = await (await diskImage()).make({ out: file('b.img'), size: SIZE, seed: 7 });
    assert.deepEqual(again.regions, regions);
    const cli = await run(process.execPath, [DISK_IMAGE, 'make', '--out', file('c.img'), '--size', '64M', '--seed', '7']);
    assert.equal(cli.code, 0, cli.stderr);
    const digest = createHash('sha256').update(image).digest('hex');
    assert.equal(await sha256File(file('b.img')), digest);
    assert.equal(await sha256File(file('c.img')), digest);
    await (await diskImage()).make({ out: file('d.img'), size: SIZE, seed: 8 });
    assert.notEqual(await sha256File(file('d.img')), digest, 'another seed, other bytes');
  });

  it('regions tile the image in 64 KiB units, and every kind is there', () => {
    let at = 0;
    for (const r of regions) {
      assert.equal(r.start, at);
      assert.ok(r.length > 0 && r.length % BLOCK === 0, `region at ${r.start} is ${r.length} bytes`);
      at += r.length;
    }
    assert.equal(at, SIZE);
    for (const kind of ['hole', 'zero', 'text', 'random', 'dup'] as const) {
      assert.ok(ofKind(kind).length > 0, `no ${kind} region`);
    }
  });

  it('holes are not allocated; everything else is, zeros included', async () => {
    const st = await fs.stat(file('a.img'));
    const written = regions.filter((r) => r.kind !== 'hole').reduce((n, r) => n + r.length, 0);
    const holes = SIZE - written;
    assert.ok(holes > SIZE / 4, `only ${holes} bytes of holes`);
    const allocated = st.blocks * 512;
    // A few file system blocks of extent tree may come on top of the data.
    assert.ok(allocated >= written && allocated <= written + 64 * 1024, `allocated ${allocated}, written ${written}, holes ${holes}`);
    for (const r of [...ofKind('hole'), ...ofKind('zero')]) assert.ok(bytesOf(r).every((b) => b === 0), `${r.kind} at ${r.start}`);
  });

  it('text compresses, random does not', () => {
    const ratio = (kind: RegionKind) => {
      const data = Buffer.concat(ofKind(kind).map(bytesOf));
      return data.length / deflateRawSync(data, { level: 1 }).length;
    };
    const text = ratio('text');
    const random = ratio('random');
    assert.ok(text > 2.5, `text compresses ${text.toFixed(2)}×`);
    assert.ok(random < 1.01, `random compresses ${random.toFixed(3)}×`);
    // Text looks like text: words, spaces and newlines.
    const sample = bytesOf(ofKind('text')[0]!).subarray(0, 4096).toString('latin1');
    assert.match(sample, /^[\x20-\x7e\n]+$/);
    assert.ok(sample.split(/[ \n]/).length > 400, 'words are short');
  });

  it('dup regions repeat whole chunks; random regions never do', () => {
    const seen = new Map<string, number>();
    const chunksIn = (kind: RegionKind) => ofKind(kind).flatMap((r) => {
      const out: string[] = [];
      for (let o = Math.ceil(r.start / CHUNK) * CHUNK; o + CHUNK <= r.start + r.length; o += CHUNK) {
        out.push(createHash('sha256').update(image.subarray(o, o + CHUNK)).digest('hex'));
      }
      return out;
    });
    for (const h of [...chunksIn('dup'), ...chunksIn('random'), ...chunksIn('text')]) seen.set(h, (seen.get(h) ?? 0) + 1);
    const dup = chunksIn('dup');
    assert.ok(dup.length > 0, 'no whole chunk inside a dup region');
    assert.ok(dup.some((h) => seen.get(h)! > 1), 'no dup chunk appears twice');
    assert.ok(chunksIn('random').every((h) => seen.get(h) === 1), 'a random chunk repeats');
  });

  describe('mutate', () => {
    let extents: ChangedExtent[];
    let next: Buffer;

    before(async () => {
      ({ extents } = await (await diskImage()).mutate({ input: file('a.img'), out: file('a2.img'), change: 5, seed: 8, extents: file('a2.json') }));
      next = await fs.readFile(file('a2.img'));
    });

    it('writes the extents as JSON, sorted, merged, in 64 KiB units, about the share asked for', async () => {
      assert.deepEqual(JSON.parse(await fs.readFile(file('a2.json'), 'utf8')), extents);
      for (let i = 0; i < extents.length; i++) {
        const e = extents[i]!;
        assert.ok(e.start % BLOCK === 0 && e.length % BLOCK === 0 && e.length > 0, JSON.stringify(e));
        if (i > 0) assert.ok(e.start > extents[i - 1]!.start + extents[i - 1]!.length, 'sorted, and adjacent extents merged');
      }
      const changed = extents.reduce((n, e) => n + e.length, 0);
      assert.equal(changed, Math.round((SIZE / BLOCK) * 0.05) * BLOCK);
    });

    it('the extents cover exactly the 64 KiB blocks that differ', () => {
      assert.equal(next.length, image.length);
      const inExtent = (o: number) => extents.some((e) => o >= e.start && o < e.start + e.length);
      const wrong: number[] = [];
      for (let o = 0; o < SIZE; o += BLOCK) {
        const differs = !image.subarray(o, o + BLOCK).equals(next.subarray(o, o + BLOCK));
        if (differs !== inExtent(o)) wrong.push(o);
      }
      assert.deepEqual(wrong, [], 'blocks where "differs" and "in an extent" disagree');
    });

    it('the same seed gives the same next generation', async () => {
      const again = await (await diskImage()).mutate({ input: file('a.img'), out: file('a3.img'), change: 5, seed: 8 });
      assert.deepEqual(again.extents, extents);
      assert.ok((await fs.readFile(file('a3.img'))).equals(next));
    });
  });

  it('the command refuses bad usage with exit 2', async () => {
    const r = await run(process.execPath, [DISK_IMAGE, 'make', '--out', file('x.img')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /make needs --size/);
  });
});
