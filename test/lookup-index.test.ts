/**
 * The master index's lookup file (src/repository/lookup-*.ts, master-index.ts): built from
 * index files, searched in place, merged with new index files, rebuilt when stale or
 * corrupt, and opening reads only the index files it does not cover.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { type IndexedPack, encodeIndexFile } from '../src/repository/index-file.js';
import { writeIndexFile } from '../src/repository/index-files.js';
import { buildLookupFile } from '../src/repository/lookup-build.js';
import { HEADER_SIZE, LookupCorruptError, LookupFile } from '../src/repository/lookup-file.js';
import { MasterIndex } from '../src/repository/master-index.js';
import { PLAIN_OBJECTS } from '../src/repository/object-codec.js';
import { INDEX_PREFIX } from '../src/repository/layout.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { overrideBackend } from './backend-override.js';

const tmp = fs.mkdtempSync('/tmp/vmbkp-lookup-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshPath = () => path.join(tmp, `c${seq++}`, 'lookup');
const REPO = '3f1c3f9e-0000-4000-8000-000000000001';

function digest(first: number, rest?: Buffer): Buffer {
  const d = rest ? Buffer.from(rest) : randomBytes(32);
  d[0] = first;
  return d;
}

/** One pack per call, its blobs at offsets 0, 10, 20…, so a location says which pack and entry it is. */
function pack(digests: Buffer[]): IndexedPack {
  return { id: randomBytes(32).toString('hex'), entries: digests.map((d, i) => ({ digest: d, type: 0, compression: 1, offset: i * 10, length: 10, rawLength: 20 + i })) };
}

function indexFiles(packs: IndexedPack[][]): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  packs.forEach((p, i) => files.set(`index/${String(i).padStart(64, '0')}`, encodeIndexFile(p)));
  return files;
}

async function build(file: string, files: Map<string, Buffer>, base?: LookupFile): Promise<LookupFile> {
  await buildLookupFile({ path: file, repositoryId: REPO, names: [...files.keys()], read: async (n) => files.get(n)!, ...(base ? { base } : {}) });
  return LookupFile.open(file, REPO);
}

/** Digests that stress the search: the lowest and highest, a shared 40-bit prefix past the partition byte, one bucket's neighbours. */
function boundaryDigests(): Buffer[] {
  const lowest = Buffer.alloc(32), highest = Buffer.alloc(32, 0xff);
  const prefix = randomBytes(32);
  const sharing = [0, 1, 2].map(() => Buffer.concat([prefix.subarray(0, 6), randomBytes(26)]));
  const neighbour = Buffer.from(sharing[0]!); neighbour[31]! ^= 1;
  return [lowest, highest, ...sharing, neighbour];
}

describe('lookup file', () => {
  it('finds every listed blob where its index file says, and no other', async () => {
    const special = boundaryDigests();
    const many = Array.from({ length: 3000 }, (_, i) => digest(i % 256));
    const packs = [pack(many.slice(0, 1000)), pack([...many.slice(1000, 2000), ...special.slice(0, 3)])];
    const later = [pack([...many.slice(2000), ...special.slice(3)])];
    const f = await build(freshPath(), indexFiles([packs, later]));
    assert.equal(f.count, 3000 + special.length);
    for (const p of [...packs, ...later]) {
      for (const e of p.entries) assert.deepEqual(f.lookup(e.digest), { pack: p.id, type: 0, compression: 1, offset: e.offset, length: 10, rawLength: e.rawLength });
    }
    for (const d of special) { const x = Buffer.from(d); x[31]! ^= 0x80; if (!special.some((s) => s.equals(x))) assert.equal(f.lookup(x), undefined); }
    for (let i = 0; i < 200; i++) assert.equal(f.lookup(randomBytes(32)), undefined);
    const all = [...f.entries()].map(([hex]) => hex);
    assert.equal(all.length, f.count);
    assert.deepEqual(all, [...all].sort());
    f.close();
  });

  it('keeps the first location of a digest listed twice (first index file, then the file already built)', async () => {
    const d = digest(7);
    const [a, b, c] = [pack([d]), pack([d]), pack([d])];
    const first = await build(freshPath(), indexFiles([[a], [b]]));
    assert.equal(first.lookup(d)?.pack, a.id);
    const file = path.join(tmp, 'dup', 'lookup');
    const base = await build(file, indexFiles([[a]]));
    const merged = await build(file, new Map([[`index/${'f'.repeat(64)}`, encodeIndexFile([c])]]), base);
    assert.equal(merged.count, 1);
    assert.equal(merged.lookup(d)?.pack, a.id);
    base.close(); first.close(); merged.close();
  });

  it('merges new index files into an existing file: old and new found, covers both', async () => {
    const file = freshPath();
    const oldPacks = [pack(Array.from({ length: 500 }, (_, i) => digest(i % 256)))];
    const base = await build(file, indexFiles([oldPacks]));
    const newPacks = [pack(Array.from({ length: 700 }, (_, i) => digest((i * 7) % 256))), pack(boundaryDigests())];
    const files = new Map([[`index/${'a'.repeat(64)}`, encodeIndexFile(newPacks)]]);
    const merged = await build(file, files, base);
    base.close();
    assert.equal(merged.count, 500 + 700 + 6);
    for (const p of [...oldPacks, ...newPacks]) for (const e of p.entries) assert.equal(merged.lookup(e.digest)?.pack, p.id);
    assert.deepEqual([...merged.covers].sort(), [`index/${'0'.repeat(64)}`, `index/${'a'.repeat(64)}`]);
    merged.close();
  });

  it('refuses a file of another repository, a truncated one, a damaged header and reports a damaged entry', async () => {
    const file = freshPath();
    const p = pack(Array.from({ length: 400 }, (_, i) => digest(i % 256)));
    (await build(file, indexFiles([[p]]))).close();
    assert.throws(() => LookupFile.open(file, 'another-id'), LookupCorruptError);
    const good = fs.readFileSync(file);
    fs.writeFileSync(file, good.subarray(0, good.length - 1));
    assert.throws(() => LookupFile.open(file, REPO), LookupCorruptError);
    const header = Buffer.from(good); header[20]! ^= 1;
    fs.writeFileSync(file, header);
    assert.throws(() => LookupFile.open(file, REPO), LookupCorruptError);
    const covers = Buffer.from(good); covers[good.length - 4 * 257 - 5]! ^= 1;
    fs.writeFileSync(file, covers);
    assert.throws(() => LookupFile.open(file, REPO), LookupCorruptError);
    // Every entry of the first blob's bucket damaged: its lookup sees it.
    const entry = Buffer.from(good);
    fs.writeFileSync(file, good);
    const f0 = LookupFile.open(file, REPO);
    const first = [...f0.entries()][0]![0];
    f0.close();
    entry[HEADER_SIZE + 40]! ^= 1;
    fs.writeFileSync(file, entry);
    const f = LookupFile.open(file, REPO);
    assert.throws(() => f.lookup(Buffer.from(first, 'hex')), LookupCorruptError);
    assert.throws(() => [...f.entries()], LookupCorruptError);
    f.close();
  });
});

/** A backend whose index file reads are counted. */
function counting(inner: MemoryBackend): { backend: ReturnType<typeof overrideBackend>; reads: string[] } {
  const reads: string[] = [];
  const backend = overrideBackend(inner, {
    get: (name, range, into) => { if (name.startsWith(INDEX_PREFIX)) reads.push(name); return inner.get(name, range, into); },
  });
  return { backend, reads };
}

describe('master index', () => {
  const open = (backend: ReturnType<typeof overrideBackend>, file: string, memoryEntries = 0) =>
    new MasterIndex(backend, PLAIN_OBJECTS, REPO, { lookupPath: file, memoryEntries });

  it('reads only the index files the lookup file does not cover; in memory while few, merged when many', async () => {
    const mem = new MemoryBackend();
    const { backend, reads } = counting(mem);
    const file = freshPath();
    const first = [pack(Array.from({ length: 300 }, () => randomBytes(32))), pack(Array.from({ length: 300 }, () => randomBytes(32)))];
    for (const p of first) await writeIndexFile(mem, PLAIN_OBJECTS, [p]);
    const a = open(backend, file);
    await a.load();
    assert.equal(reads.length, 2 + 2, 'the first opening reads each index file (once kept in memory, once merged)');
    assert.deepEqual(a.counts, { merged: 600, inMemory: 0 });
    reads.length = 0;
    const b = open(backend, file, 1000);
    await b.load();
    assert.deepEqual(reads, [], 'an opening with nothing new reads no index file');
    const added = pack(Array.from({ length: 50 }, () => randomBytes(32)));
    const addedName = await writeIndexFile(mem, PLAIN_OBJECTS, [added]);
    const c = open(backend, file, 1000);
    await c.load();
    assert.deepEqual(reads, [addedName], 'only the new index file is read');
    assert.deepEqual(c.counts, { merged: 600, inMemory: 50 });
    for (const p of [...first, added]) for (const e of p.entries) assert.equal(c.lookup(e.digest.toString('hex'))?.pack, p.id);
    assert.equal(c.lookup(randomBytes(32).toString('hex')), undefined);
    assert.equal([...c.entries()].length, 650);
  });

  it('rebuilds a stale lookup file (an index file it covers is gone) and never answers from it', async () => {
    const mem = new MemoryBackend();
    const file = freshPath();
    const [p1, p2] = [pack([randomBytes(32)]), pack([randomBytes(32)])];
    const n1 = await writeIndexFile(mem, PLAIN_OBJECTS, [p1]);
    await writeIndexFile(mem, PLAIN_OBJECTS, [p2]);
    await open(counting(mem).backend, file).load();
    // gc rewrote the index: p1's blob is gone with its index file.
    await mem.remove(n1);
    const x = open(counting(mem).backend, file);
    await x.load();
    assert.equal(x.lookup(p1.entries[0]!.digest.toString('hex')), undefined);
    assert.equal(x.lookup(p2.entries[0]!.digest.toString('hex'))?.pack, p2.id);
    const rebuilt = LookupFile.open(file, REPO);
    assert.deepEqual([...rebuilt.covers], (await mem.list(INDEX_PREFIX)));
    rebuilt.close();
  });

  it('removes a corrupt lookup file and rebuilds it from the index files', async () => {
    const mem = new MemoryBackend();
    const file = freshPath();
    const p = pack(Array.from({ length: 100 }, () => randomBytes(32)));
    await writeIndexFile(mem, PLAIN_OBJECTS, [p]);
    await open(counting(mem).backend, file).load();
    const bytes = fs.readFileSync(file);
    bytes[HEADER_SIZE + 5]! ^= 0xff; // an entry: found by the lookup that reads it
    fs.writeFileSync(file, bytes);
    const x = open(counting(mem).backend, file, 1000);
    await x.load();
    assert.throws(() => { for (const e of p.entries) x.lookup(e.digest.toString('hex')); }, LookupCorruptError);
    assert.equal(fs.existsSync(file), false, 'the corrupt file is removed');
    const { backend, reads } = counting(mem);
    const y = open(backend, file);
    await y.load();
    assert.ok(reads.length > 0, 'rebuilt from the index files');
    for (const e of p.entries) assert.equal(y.lookup(e.digest.toString('hex'))?.pack, p.id);
    // A damaged header: found when opening, the file rebuilt at once.
    const again = fs.readFileSync(file); again[9]! ^= 1; fs.writeFileSync(file, again);
    const z = open(counting(mem).backend, file);
    await z.load();
    for (const e of p.entries) assert.equal(z.lookup(e.digest.toString('hex'))?.pack, p.id);
    assert.doesNotThrow(() => LookupFile.open(file, REPO).close());
  });

  it("a process writing many blobs merges its own index files into the lookup file: memory stays bounded, every blob found", async () => {
    const mem = new MemoryBackend();
    const file = freshPath();
    const base = pack(Array.from({ length: 40 }, () => randomBytes(32)));
    await writeIndexFile(mem, PLAIN_OBJECTS, [base]);
    const idx = open(counting(mem).backend, file, 100);
    await idx.load();
    assert.deepEqual(idx.counts, { merged: 0, inMemory: 40 }, 'few blobs at the start: in memory, no lookup file');
    // A backup: an index file of 60 new blobs at a time, as the pack writer writes them.
    const written: IndexedPack[] = [base];
    let peak = 0;
    const all = () => written.flatMap((p) => p.entries.map((e) => [e.digest.toString('hex'), p.id] as const));
    for (let i = 0; i < 10; i++) {
      const p = pack(Array.from({ length: 60 }, () => randomBytes(32)));
      const name = await writeIndexFile(mem, PLAIN_OBJECTS, [p]);
      written.push(p);
      idx.indexed(name, [p]);
      // Found while a merge may be under way, and iterated once each.
      for (const [hex, id] of all()) assert.equal(idx.lookup(hex)?.pack, id);
      assert.equal(new Set([...idx.entries()].map(([hex]) => hex)).size, all().length);
      peak = Math.max(peak, idx.counts.inMemory);
      if (i % 2 === 1) await idx.settled();
    }
    await idx.settled();
    assert.ok(peak <= 100 + 2 * 60, `at most the threshold and two index files' blobs in memory, held ${peak}`);
    assert.ok(idx.counts.merged >= 640 - 160, `most blobs were merged into the lookup file: ${JSON.stringify(idx.counts)}`);
    assert.equal(idx.counts.merged + idx.counts.inMemory, 640);
    for (const [hex, id] of all()) assert.equal(idx.lookup(hex)?.pack, id);
    assert.equal([...idx.entries()].length, 640, 'each blob once');
    const onDisk = LookupFile.open(file, REPO);
    assert.ok(onDisk.covers.size >= 8, `the lookup file covers the index files merged: ${onDisk.covers.size}`);
    onDisk.close();
    // An iteration under way when a merge replaces the lookup file goes on over what it started with.
    const p = pack(Array.from({ length: 120 }, () => randomBytes(32)));
    const before = all().map(([hex]) => hex);
    const iteration = idx.entries();
    const seen: string[] = [iteration.next().value![0]];
    idx.indexed(await writeIndexFile(mem, PLAIN_OBJECTS, [p]), [p]);
    written.push(p);
    await idx.settled();
    for (const [hex] of iteration) seen.push(hex);
    assert.equal(new Set(seen).size, seen.length, 'no blob twice');
    const seenSet = new Set(seen);
    assert.ok(before.every((hex) => seenSet.has(hex)), 'every blob there when it started, read on from the replaced file');
    for (const [hex, id] of all()) assert.equal(idx.lookup(hex)?.pack, id);
    // A later process opens with the lookup file and finds everything.
    const later = open(counting(mem).backend, file, 1000);
    await later.load();
    for (const [hex, id] of all()) assert.equal(later.lookup(hex)?.pack, id);
  });

  it('an iteration of a lookup file larger than one read goes on after a merge replaced the file', async () => {
    const mem = new MemoryBackend();
    const file = freshPath();
    // More entries than one 4 MiB read of the lookup file holds, so the iteration reads again after the merge.
    const big = pack(Array.from({ length: 80_000 }, () => randomBytes(32)));
    await writeIndexFile(mem, PLAIN_OBJECTS, [big]);
    const idx = open(counting(mem).backend, file, 0);
    await idx.load();
    assert.deepEqual(idx.counts, { merged: 80_000, inMemory: 0 });
    const iteration = idx.entries();
    let n = iteration.next().done ? 0 : 1;
    const p = pack(Array.from({ length: 5 }, () => randomBytes(32)));
    idx.indexed(await writeIndexFile(mem, PLAIN_OBJECTS, [p]), [p]);
    await idx.settled();
    assert.deepEqual(idx.counts, { merged: 80_005, inMemory: 0 }, 'merged at once (memoryEntries 0)');
    for (const _ of iteration) n++;
    assert.ok(n >= 80_000, `the iteration read on from the replaced file: ${n} blobs`);
    assert.equal([...idx.entries()].length, 80_005);
  });

  it('when its merge fails, a process keeps its blobs in memory and still finds them', async () => {
    const mem = new MemoryBackend();
    // The cache's directory cannot be made: a file is in the way.
    const blocker = path.join(tmp, `blocker${seq++}`);
    fs.writeFileSync(blocker, '');
    const idx = open(counting(mem).backend, path.join(blocker, 'lookup'), 10);
    await idx.load();
    const p = pack(Array.from({ length: 30 }, () => randomBytes(32)));
    idx.indexed(await writeIndexFile(mem, PLAIN_OBJECTS, [p]), [p]);
    await idx.settled();
    assert.deepEqual(idx.counts, { merged: 0, inMemory: 30 });
    for (const e of p.entries) assert.equal(idx.lookup(e.digest.toString('hex'))?.pack, p.id);
    assert.equal([...idx.entries()].length, 30);
  });
});
