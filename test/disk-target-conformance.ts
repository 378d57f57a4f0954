/**
 * The DiskTarget conformance suite. Every target runs it (disk-target-*.test.ts): the suite
 * writes known content the way a restore does, and the fixture reads the result back through
 * the matching reader (the file, qemu-img, the NBD server, the datastore) once it is closed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VmbkpError } from '../src/errors.js';
import type { DiskTarget } from '../src/sources/types.js';
import { allZero, knownDisk } from './known-content.js';

export interface TargetUnderTest {
  readonly target: DiskTarget;
  /** What the disk holds now, read by other means than the target; called after close(). */
  readonly readBack: () => Promise<Buffer>;
  /** Whether what the target created (a file, an image) exists; absent when it creates nothing of its own. */
  readonly exists?: () => Promise<boolean>;
  /** Undoes what creating did (servers, directories). */
  readonly cleanup: () => Promise<void>;
}

export interface DiskTargetSuiteOptions {
  /** Disk size; the default, 6 MiB + 2560, ends in a partial 4 KiB block. */
  readonly size?: number;
}

const KIB = 1024;

/** The content's data as the writes of a restore: runs of non-zero 4 KiB pages, cut at odd places. */
function dataRuns(content: Buffer): { offset: number; length: number }[] {
  const runs: { offset: number; length: number }[] = [];
  for (let o = 0; o < content.length; o += 4 * KIB) {
    const n = Math.min(4 * KIB, content.length - o);
    if (allZero(content, o, n)) continue;
    const last = runs[runs.length - 1];
    // Runs of at most 300 KiB, so that writes cross chunk and page boundaries unaligned.
    if (last && last.offset + last.length === o && last.length + n <= 300 * KIB) last.length += n;
    else runs.push({ offset: o, length: n });
  }
  return runs;
}

/** The ranges between runs: what a target that is not zeroed needs zeroed. */
function gaps(runs: readonly { offset: number; length: number }[], size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  let pos = 0;
  for (const r of [...runs, { offset: size, length: 0 }]) {
    if (r.offset > pos) out.push({ offset: pos, length: r.offset - pos });
    pos = r.offset + r.length;
  }
  return out;
}

export function diskTargetConformance(name: string, options: DiskTargetSuiteOptions,
  create: (size: number) => Promise<TargetUnderTest>): void {
  const size = options.size ?? 6 * 1024 * KIB + 2560;
  describe(`DiskTarget conformance: ${name}`, () => {
    const content = knownDisk(size, 31).bytes;
    const withTarget = (fn: (t: TargetUnderTest) => Promise<void>) => async () => {
      const t = await create(size);
      try {
        await fn(t);
      } finally {
        // A check that failed half way leaves the target open; servers wait for their clients.
        await t.target.close().catch(() => {});
        await t.cleanup();
      }
    };

    it('a restore\'s writes, flushed and closed, read back as the content', withTarget(async (t) => {
      const { target } = t;
      assert.equal(target.size, size);
      assert.ok(target.description.length > 0);
      const runs = dataRuns(content);
      // In disk order, as both restore writers can; holes are zeroed only where the target is not zeroed already.
      const writes = [...runs.map((r) => ({ ...r, zero: false })), ...(target.zeroed ? [] : gaps(runs, size).map((g) => ({ ...g, zero: true })))]
        .sort((a, b) => a.offset - b.offset);
      for (const w of writes) {
        if (w.zero) await target.zero(w.offset, w.length);
        else await target.write(w.offset, content.subarray(w.offset, w.offset + w.length));
      }
      await target.flush();
      await target.close();
      const got = await t.readBack();
      assert.equal(got.length, size);
      assert.ok(got.equals(content), 'the disk holds what was written');
    }));

    it('zero() makes zeros over written data; unwritten ranges of a zeroed target read as zeros', withTarget(async (t) => {
      const { target } = t;
      const model = Buffer.alloc(size);
      const put = async (offset: number, length: number) => {
        await target.write(offset, content.subarray(offset, offset + length));
        content.copy(model, offset, offset, offset + length);
      };
      if (!target.zeroed && !target.sequential) await target.zero(0, size);
      if (target.sequential) {
        // In order: data, a zeroed range, data after a gap the target fills with zeros.
        await put(0, 100_000);
        await target.zero(100_000, 50_000);
        await put(500_000, 4096);
        await put(size - 777, 777);
      } else {
        await put(0, 2 * 1024 * KIB);
        await target.zero(4096, 8192);
        await target.zero(300_001, 99_999);
        await put(size - 777, 777);
        await put(12_288, 1000);
        model.fill(0, 4096, 12_288);
        model.fill(0, 300_001, 400_000);
        content.copy(model, 12_288, 12_288, 13_288);
      }
      await target.flush();
      await target.close();
      assert.ok((await t.readBack()).equals(model), 'zeroed and unwritten ranges read as zeros, data as written');
    }));

    it('writes out of order: kept by a random-access target, refused by a sequential one', withTarget(async (t) => {
      const { target } = t;
      if (!target.zeroed && !target.sequential) await target.zero(0, size);
      await target.write(1024 * KIB, content.subarray(1024 * KIB, 1024 * KIB + 4096));
      if (target.sequential) {
        await assert.rejects(target.write(0, content.subarray(0, 4096)), (err: unknown) => err instanceof VmbkpError && /order|after/.test(err.message));
        await assert.rejects(target.zero(0, 4096), (err: unknown) => err instanceof VmbkpError && /order|after/.test(err.message));
        await target.close();
        return;
      }
      await target.write(0, content.subarray(0, 4096));
      await target.flush();
      await target.close();
      const want = Buffer.alloc(size);
      content.copy(want, 0, 0, 4096);
      content.copy(want, 1024 * KIB, 1024 * KIB, 1024 * KIB + 4096);
      assert.ok((await t.readBack()).equals(want));
    }));

    it('a write past the end fails and says so', withTarget(async (t) => {
      const { target } = t;
      await assert.rejects(target.write(size - 100, Buffer.alloc(200, 1)), (err: unknown) => err instanceof VmbkpError && err.code === 'IO');
      await target.close().catch(() => {});
    }));

    it('discard, where offered, removes what the target created', withTarget(async (t) => {
      const { target } = t;
      if (!target.discard) return;
      if (t.exists) assert.equal(await t.exists(), true, 'the target exists once created');
      await target.write(0, content.subarray(0, 8192));
      await target.discard();
      if (t.exists) assert.equal(await t.exists(), false, 'discard removed it');
    }));
  });
}
