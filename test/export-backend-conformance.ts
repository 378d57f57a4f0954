/**
 * The ExportBackend conformance suite. Every export runs it (export-backend.test.ts): the
 * fixture serves the suite's known content; the suite reads it directly and through a real
 * NbdServer and client, checks block status against the bytes, and — for a writable export —
 * that writes read back, and that a new export over the same data no longer shows them.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BASE_ALLOCATION, NbdClient } from '../src/nbd/client.js';
import { StateFlag } from '../src/nbd/constants.js';
import { NbdServerError } from '../src/nbd/errors.js';
import type { ExportBackend, ExportExtent } from '../src/nbd/export-backend.js';
import { NbdServer } from '../src/nbd/server.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { tempDir } from './helpers.js';
import { allZero } from './known-content.js';

export interface ExportUnderTest {
  readonly backend: ExportBackend;
  /** Closes the export and undoes what opening did. */
  readonly cleanup: () => Promise<void>;
}

export interface ExportSuiteOptions {
  /** The bytes every newly opened export serves (a multiple of 512, at least 4 MiB). */
  readonly content: Buffer;
  /** Zero ranges of the content, at least 256 KiB each and aligned to the export's blocks. */
  readonly holes: readonly { readonly start: number; readonly length: number }[];
  readonly writable: boolean;
}

const KIB = 1024;

async function read(b: ExportBackend, offset: number, length: number): Promise<Buffer> {
  const into = Buffer.alloc(length, 0x5a);
  await b.read(offset, into);
  return into;
}

/** Block status from 0 to the end, asked from where the last answer stopped. */
async function wholeStatus(b: ExportBackend & { blockStatus: NonNullable<ExportBackend['blockStatus']> }): Promise<{ start: number; e: ExportExtent }[]> {
  const out: { start: number; e: ExportExtent }[] = [];
  for (let pos = 0; pos < b.size;) {
    const extents = await b.blockStatus(pos, b.size - pos);
    assert.ok(extents.length > 0, `blockStatus(${pos}) answered nothing`);
    let covered = 0;
    for (const e of extents) {
      assert.ok(Number.isSafeInteger(e.length) && e.length > 0, `blockStatus(${pos}): extent ${JSON.stringify(e)} is empty`);
      assert.equal(e.flags & ~(StateFlag.HOLE | StateFlag.ZERO), 0, `blockStatus(${pos}): unknown flags ${e.flags}`);
      out.push({ start: pos + covered, e });
      covered += e.length;
    }
    assert.ok(covered <= b.size - pos, `blockStatus(${pos}) covers ${covered} bytes, past the end`);
    pos += covered;
  }
  return out;
}

export function exportBackendConformance(name: string, options: ExportSuiteOptions, open: () => Promise<ExportUnderTest>): void {
  const { content, holes } = options;
  const size = content.length;
  describe(`ExportBackend conformance: ${name}`, () => {
    const withExport = (fn: (b: ExportBackend) => Promise<void>) => async () => {
      const { backend, cleanup } = await open();
      try { await fn(backend); } finally { await cleanup(); }
    };

    it('has the size of its content and says whether it is writable', withExport(async (b) => {
      assert.equal(b.size, size);
      assert.equal(b.writable, options.writable);
      if (b.writable) assert.ok(b.write && b.zero && b.trim, 'a writable export has write, zero and trim');
    }));

    it('reads at any alignment equal the content, one at a time and all at once', withExport(async (b) => {
      const reads: [number, number][] = [
        [0, 1], [0, 4096], [1, 4095], [12_345, 67_891], [256 * KIB - 7, 14], [256 * KIB - 1, 256 * KIB + 2],
        [size - 1, 1], [size - 4096 - 3, 4099], [size - 3 * 1024 * KIB - 5, 3 * 1024 * KIB + 5], [0, size],
      ];
      for (const [offset, length] of reads) {
        assert.ok((await read(b, offset, length)).equals(content.subarray(offset, offset + length)), `read of ${length} at ${offset}`);
      }
      const all = await Promise.all(reads.map(([offset, length]) => read(b, offset, length)));
      all.forEach((got, k) => {
        const [offset, length] = reads[k]!;
        assert.ok(got.equals(content.subarray(offset, offset + length)), `concurrent read of ${length} at ${offset}`);
      });
    }));

    it('zero regions read as zeros, also into a buffer that held other bytes', withExport(async (b) => {
      for (const h of holes) {
        assert.ok(allZero(content, h.start, h.length), 'the fixture\'s holes are zeros');
        const got = await read(b, h.start, h.length);
        assert.ok(allZero(got, 0, h.length), `the hole at ${h.start} reads as zeros`);
        const edge = await read(b, h.start - 100, 200);
        assert.ok(edge.equals(content.subarray(h.start - 100, h.start + 100)), `the edge of the hole at ${h.start}`);
      }
    }));

    it('block status, when offered, covers the disk and marks as zero only what reads as zeros', withExport(async (b) => {
      if (!b.blockStatus) return;
      const status = await wholeStatus(b as ExportBackend & { blockStatus: NonNullable<ExportBackend['blockStatus']> });
      assert.equal(status.reduce((n, s) => n + s.e.length, 0), size);
      for (const { start, e } of status) {
        if (e.flags & StateFlag.ZERO) assert.ok(allZero(content, start, e.length), `[${start}, ${start + e.length}) is marked zero but holds data`);
      }
      // Every hole of the content large enough to hold an aligned 256 KiB is reported as one.
      for (const h of holes) {
        const zero = status.some(({ start, e }) => (e.flags & StateFlag.ZERO) && start <= h.start && start + e.length >= h.start + 256 * KIB);
        assert.ok(zero, `the hole at ${h.start} is reported as zeros`);
      }
      const part = await b.blockStatus(holes[0]!.start + 100, 1000);
      assert.ok(part.length > 0 && part.reduce((n, e) => n + e.length, 0) <= 1000, 'an answer covers at most what was asked');
    }));

    it('served by NbdServer: a client reads the content; writes are refused unless writable', withExport(async (b) => {
      const { dir, cleanup } = await tempDir('vmbkp-export-');
      const server = new NbdServer(b, { name: 'disk' });
      try {
        const address = await server.listen({ transport: 'unix', path: path.join(dir, 'nbd.sock') });
        const client = await NbdClient.connect(parseNbdUri(`nbd+unix:///disk?socket=${address.transport === 'unix' ? address.path : ''}`),
          { metaContexts: [BASE_ALLOCATION] });
        try {
          assert.equal(client.size, size);
          assert.equal(client.readOnly, !options.writable);
          assert.ok((await client.read(size - 70_000, 70_000)).equals(content.subarray(size - 70_000)));
          if (b.blockStatus) assert.ok((await client.blockStatus(BASE_ALLOCATION, 0, size)).length > 0);
          const data = Buffer.alloc(5000, 0x77);
          if (options.writable) {
            await client.write(4097, data);
            assert.ok((await client.read(4097, 5000)).equals(data));
          } else {
            await assert.rejects(client.write(4097, data), (err: unknown) => err instanceof NbdServerError && err.nbdError === 'EPERM');
            await assert.rejects(client.writeZeroes(0, 4096), (err: unknown) => err instanceof NbdServerError && err.nbdError === 'EPERM');
            assert.ok((await client.read(4097, 5000)).equals(content.subarray(4097, 9097)), 'a refused write changed nothing');
          }
        } finally {
          await client.close();
        }
      } finally {
        await server.close();
        await cleanup();
      }
    }));

    if (!options.writable) return;

    it('writable: writes, zeroing and trims read back; a new export over the same data shows none of them', async () => {
      const first = await open();
      const b = first.backend;
      const model = Buffer.from(content);
      try {
        const ops: [string, number, number][] = [
          ['write', 1, 3], ['write', 4095, 2], ['write', 256 * KIB - 100, 300_000], ['write', holes[0]!.start + 5000, 70_000],
          ['zero', 10_000, 20_000], ['zero', 2 * 4096, 3 * 4096], ['trim', 512 * KIB, 256 * KIB], ['write', size - 10, 10],
        ];
        let k = 0;
        for (const [op, offset, length] of ops) {
          if (op === 'write') {
            const data = Buffer.alloc(length, 0x30 + k++);
            await b.write!(offset, data);
            data.copy(model, offset);
          } else if (op === 'zero') {
            await b.zero!(offset, length);
            model.fill(0, offset, offset + length);
          } else {
            // A trimmed range may read as anything; this one is block-aligned, which reads as zeros here.
            await b.trim!(offset, length);
            model.fill(0, offset, offset + length);
          }
          assert.ok((await read(b, offset, length)).equals(model.subarray(offset, offset + length)), `${op} of ${length} at ${offset} reads back`);
        }
        await b.flush?.();
        assert.ok((await read(b, 0, size)).equals(model), 'the whole export reads as written');
        if (b.blockStatus) {
          for (const { start, e } of await wholeStatus(b as ExportBackend & { blockStatus: NonNullable<ExportBackend['blockStatus']> })) {
            if (e.flags & StateFlag.ZERO) assert.ok(allZero(model, start, e.length), `after writes, [${start}, ${start + e.length}) is marked zero but holds data`);
          }
        }
      } finally {
        await first.cleanup();
      }
      const second = await open();
      try {
        assert.ok((await read(second.backend, 0, size)).equals(content), 'the writes were discarded with the export');
      } finally {
        await second.cleanup();
      }
    });
  });
}
