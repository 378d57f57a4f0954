/**
 * The DiskSource conformance suite. Every source runs it (disk-source-*.test.ts): the
 * fixture puts the suite's known content on its medium (a file, an NBD server, a VM's
 * snapshot disk) and opens a source on it; the suite compares what it reads with the content.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VmbkpError } from '../src/errors.js';
import type { DiskSource, Extent } from '../src/sources/types.js';
import { type KnownDisk, allZero, knownDisk } from './known-content.js';

export interface SourceUnderTest {
  readonly source: DiskSource;
  /** Undoes what opening did (servers, files); the suite closes the source itself. */
  readonly cleanup: () => Promise<void>;
}

export interface DiskSourceSuiteOptions {
  /** Disk size; the default, 6 MiB + 2560, ends in a partial 4 KiB block. */
  readonly size?: number;
  /** The source knows where holes are: at least one of the content's holes is left out of allocated(). */
  readonly reportsHoles: boolean;
  /** What changedSince(its own changeToken()) answers: extents (change tracking) or unknown. */
  readonly changes: 'extents' | 'unknown';
}

const KIB = 1024;
/** The engine's chunk size: reads that cross it are what backup does. */
const CHUNK = 256 * KIB;

/** Sorted, non-overlapping, non-empty extents inside [offset, offset+length). */
export function assertExtentsWithin(extents: readonly Extent[], offset: number, length: number, what: string): void {
  let end = offset;
  for (const e of extents) {
    assert.ok(Number.isSafeInteger(e.start) && Number.isSafeInteger(e.length), `${what}: ${JSON.stringify(e)} is not whole numbers`);
    assert.ok(e.length > 0, `${what}: extent ${JSON.stringify(e)} is empty`);
    assert.ok(e.start >= end, `${what}: extent ${JSON.stringify(e)} starts before ${end} (unsorted or overlapping)`);
    end = e.start + e.length;
  }
  assert.ok(end <= offset + length, `${what}: extents end at ${end}, after ${offset + length}`);
}

/** Every non-zero byte of `bytes` in [offset, offset+length) is inside an extent. */
function assertCovers(extents: readonly Extent[], bytes: Buffer, offset: number, length: number): void {
  let pos = offset;
  for (const e of [...extents, { start: offset + length, length: 0 }]) {
    assert.ok(allZero(bytes, pos, e.start - pos), `data in [${pos}, ${e.start}) is not in any allocated extent`);
    pos = Math.max(pos, e.start + e.length);
  }
}

export function diskSourceConformance(name: string, options: DiskSourceSuiteOptions,
  open: (content: Buffer) => Promise<SourceUnderTest>): void {
  const size = options.size ?? 6 * 1024 * KIB + 2560;
  describe(`DiskSource conformance: ${name}`, () => {
    const disk: KnownDisk = knownDisk(size, 11);
    const content = disk.bytes;
    const withSource = (fn: (s: DiskSource) => Promise<void>) => async () => {
      const { source, cleanup } = await open(content);
      try {
        await fn(source);
      } finally {
        await source.close().catch(() => {});
        await cleanup();
      }
    };

    it('has the size of its disk and a description', withSource(async (s) => {
      assert.equal(s.size, size);
      assert.ok(s.description.length > 0);
    }));

    it('reads at 0, unaligned, across a chunk and a hole edge, and the last partial block', withSource(async (s) => {
      const last = size % (4 * KIB) || 4 * KIB;
      const reads: [number, number][] = [
        [0, 4096], [12_345, 7_777], [CHUNK - 1000, 2000], [CHUNK - 1, 1],
        [disk.holes[0]!.start - 3000, 6000], [disk.holes[0]!.start + disk.holes[0]!.length - 1, 5000],
        [size - last, last], [size - 1, 1], [size - 3 * CHUNK - 17, 3 * CHUNK + 17],
      ];
      for (const [offset, length] of reads) {
        assert.deepEqual(await s.read(offset, length), content.subarray(offset, offset + length), `read of ${length} at ${offset}`);
      }
    }));

    it('reads the whole disk in segments equal to the content', withSource(async (s) => {
      const segment = 4 * 1024 * KIB;
      for (let o = 0; o < size; o += segment) {
        const n = Math.min(segment, size - o);
        assert.ok((await s.read(o, n)).equals(content.subarray(o, o + n)), `segment at ${o} differs`);
      }
    }));

    it('reads into the caller\'s buffer and touches nothing beside the range', withSource(async (s) => {
      const length = 10_000;
      const offset = CHUNK - 5000;
      const around = Buffer.alloc(length + 64, 0xee);
      const into = around.subarray(32, 32 + length);
      const got = await s.read(offset, length, into);
      assert.deepEqual(into, content.subarray(offset, offset + length), 'the bytes are in the given buffer');
      assert.deepEqual(got.subarray(0, length), content.subarray(offset, offset + length));
      assert.equal(got.buffer, around.buffer, 'the result is the given buffer, not a copy');
      assert.deepEqual(around.subarray(0, 32), Buffer.alloc(32, 0xee), 'bytes before the range are untouched');
      assert.deepEqual(around.subarray(32 + length), Buffer.alloc(32, 0xee), 'bytes after the range are untouched');
    }));

    it('a read past the end fails with an error of vmbkp\'s that says where', withSource(async (s) => {
      for (const [offset, length] of [[size - 100, 200], [size, 1], [size + 4096, 4096]] as const) {
        await assert.rejects(s.read(offset, length), (err: unknown) => {
          assert.ok(err instanceof VmbkpError, `a read of ${length} at ${offset}: ${String(err)} is not a VmbkpError`);
          assert.equal(err.code, 'IO');
          assert.match(err.message, new RegExp(`${offset}|${offset + length}|end|outside`), err.message);
          return true;
        }, `a read of ${length} at ${offset}`);
      }
      assert.deepEqual(await s.read(0, 100), content.subarray(0, 100), 'the source still reads after a refused read');
    }));

    it('allocated(): sorted, non-overlapping extents inside the range that cover every byte of data', withSource(async (s) => {
      const all = await s.allocated(0, size);
      assertExtentsWithin(all, 0, size, 'allocated(0, size)');
      assertCovers(all, content, 0, size);
      const hole = disk.holes[0]!;
      const offset = hole.start - 12_288;
      const length = hole.length + 3 * CHUNK;
      const part = await s.allocated(offset, length);
      assertExtentsWithin(part, offset, length, `allocated(${offset}, ${length})`);
      assertCovers(part, content, offset, length);
      if (options.reportsHoles) {
        const reported = all.reduce((n, e) => n + e.length, 0);
        const holeBytes = disk.holes.reduce((n, h) => n + h.length, 0);
        assert.ok(reported <= size - holeBytes / 2, `allocated() leaves out less than half of the holes: ${JSON.stringify(all)}`);
      }
    }));

    it('changedSince(its own change token) answers extents inside the disk, or why it cannot', withSource(async (s) => {
      const token = await s.changeToken();
      const changes = await s.changedSince(token ?? 'no-such-token');
      if (options.changes === 'unknown') {
        assert.ok(!Array.isArray(changes), `expected unknown, got ${JSON.stringify(changes)}`);
        assert.ok(typeof changes.unknown === 'string' && changes.unknown.length > 0, 'unknown says why');
      } else {
        assert.ok(token !== undefined, 'a source that tracks changes has a change token');
        assert.ok(Array.isArray(changes), `expected extents, got ${JSON.stringify(changes)}`);
        assertExtentsWithin(changes, 0, size, `changedSince(${token})`);
      }
    }));

    it('close may be called twice', withSource(async (s) => {
      await s.close();
      await s.close();
    }));
  });
}
