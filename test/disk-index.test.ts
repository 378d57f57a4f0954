/** The disk index in memory: pieces shared and copied on write, so that its cost follows the data. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIGEST_LENGTH } from '../src/repository/digest.js';
import { DiskIndex } from '../src/repository/disk-index.js';

const digest = (n: number) => Buffer.alloc(DIGEST_LENGTH, n);

describe('disk index pieces', () => {
  it('an empty index of a huge disk costs one zero piece, and a write copies only its piece', () => {
    // 1 TiB at 256 KiB chunks: 4 M chunks, 1024 pieces of 4096.
    const index = DiskIndex.empty(2 ** 40, 256 * 1024, 4096);
    assert.equal(index.count, 4 * 1024 * 1024);
    assert.equal(index.pieceCount, 1024);
    index.set(5 * 4096 + 7, digest(9));
    index.set(3, new Uint8Array(DIGEST_LENGTH)); // a zero stays zero: no copy
    assert.deepEqual([...index.dataChunks()], [5 * 4096 + 7]);
    assert.ok(index.isZeroPiece(0) && index.isZeroPiece(4) && index.isZeroPiece(6) && !index.isZeroPiece(5));
    assert.equal(index.zerosIn(5), 4095);
    assert.ok(index.get(5 * 4096 + 7).equals(digest(9)));
    assert.ok(index.isZero(5 * 4096 + 8));
  });

  it('a clone shares pieces until either side writes', () => {
    const a = new DiskIndex(10 * 4096, 4096, Buffer.concat(Array.from({ length: 10 }, (_, i) => digest(i + 1))), 4);
    const b = a.clone();
    b.set(1, digest(77));
    a.set(9, digest(88));
    assert.ok(a.get(1).equals(digest(2)));
    assert.ok(b.get(1).equals(digest(77)));
    assert.ok(b.get(9).equals(digest(10)));
    assert.ok(a.get(9).equals(digest(88)));
    assert.equal(a.pieceCount, 3);
    assert.equal(a.pieceLength(2), 2);
    assert.deepEqual(b.digests.length, 10 * DIGEST_LENGTH);
  });
});
