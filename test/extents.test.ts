import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from '../src/errors.js';
import { checkExtents, chunkRanges, mergeExtents, parseExtentsJson, segments } from '../src/engine/extents.js';
import { chooseMode } from '../src/jobs/choose-mode.js';
import { unreportedChanges } from '../src/engine/backup-disk.js';
import { DiskIndex } from '../src/repository/disk-index.js';

describe('extents', () => {
  it('cover every byte with whole chunks, merged', () => {
    // [0,1) + [1,2) + [2,5) touch, so they merge; an empty extent covers nothing.
    assert.deepEqual(chunkRanges([{ start: 10, length: 5 }, { start: 4096, length: 1 }, { start: 9000, length: 8000 }, { start: 0, length: 0 }], 4096), [{ first: 0, end: 5 }]);
    assert.deepEqual(chunkRanges([{ start: 8192, length: 4096 }, { start: 0, length: 1 }], 4096), [{ first: 0, end: 1 }, { first: 2, end: 3 }]);
  });

  it('merge when they touch or overlap, drop empty ones, sort', () => {
    assert.deepEqual(mergeExtents([{ start: 10, length: 5 }, { start: 0, length: 10 }, { start: 30, length: 0 }, { start: 12, length: 10 }, { start: 40, length: 1 }]),
      [{ start: 0, length: 22 }, { start: 40, length: 1 }]);
  });

  it('split into segments of at most n chunks', () => {
    assert.deepEqual([...segments([{ first: 0, end: 5 }, { first: 9, end: 10 }], 2)],
      [{ first: 0, end: 2 }, { first: 2, end: 4 }, { first: 4, end: 5 }, { first: 9, end: 10 }]);
  });

  it('outside the disk or malformed are input errors that say where', () => {
    assert.throws(() => checkExtents([{ start: 0, length: 10 }, { start: 100, length: 1 }], 100, 'x.json'), (e: Error) => e instanceof InputError && /extent 1 .* past the disk's end \(100 bytes\)/.test(e.message));
    assert.throws(() => checkExtents([{ start: -1, length: 1 }], 100, 'x.json'), InputError);
    assert.throws(() => checkExtents([{ start: 0.5, length: 1 }], 100, 'x.json'), InputError);
    checkExtents([{ start: 0, length: 100 }], 100, 'x.json');
  });

  it('JSON parsing names the problem', () => {
    assert.throws(() => parseExtentsJson('[{"start": 1', 'c.json'), /c.json is not valid JSON/);
    assert.throws(() => parseExtentsJson('{"start": 1}', 'c.json'), /must be a JSON array/);
    assert.throws(() => parseExtentsJson('[{"start": "1", "length": 2}]', 'c.json'), /entry 0/);
    assert.deepEqual(parseExtentsJson('[{"start": 1, "length": 2}]', 'c.json'), [{ start: 1, length: 2 }]);
  });
});

describe('mode choice', () => {
  const base = { previousUsable: true, changesKnown: true };
  it('auto prefers incr, then diff, then full, and says why', () => {
    assert.deepEqual(chooseMode('d', { requested: 'auto', ...base }), { mode: 'incr' });
    assert.deepEqual(chooseMode('d', { requested: 'auto', previousUsable: true, changesKnown: false, changesWhy: 'no token' }), { mode: 'diff', note: 'incr not possible: no token' });
    assert.deepEqual(chooseMode('d', { requested: 'auto', previousUsable: false, changesKnown: true, previousWhy: 'resized' }), { mode: 'full', note: 'diff not possible: resized' });
  });
  it('explicit modes are honoured or refused', () => {
    assert.deepEqual(chooseMode('d', { requested: 'full', ...base }), { mode: 'full' });
    assert.throws(() => chooseMode('disk a', { requested: 'incr', previousUsable: true, changesKnown: false }), /disk a: incr needs the changed extents/);
    assert.throws(() => chooseMode('d', { requested: 'incr', previousUsable: false, changesKnown: true }), /incr is not possible/);
    assert.throws(() => chooseMode('d', { requested: 'diff', previousUsable: false, changesKnown: false }), /diff is not possible/);
  });
  it('lenient explicit modes fall back with a note instead of failing (VM backups)', () => {
    const lenient = true;
    assert.deepEqual(chooseMode('d', { requested: 'incr', ...base, lenient }), { mode: 'incr' });
    assert.deepEqual(chooseMode('d', { requested: 'incr', previousUsable: true, changesKnown: false, changesWhy: 'CBT reset', lenient }), { mode: 'diff', note: 'incr not possible: CBT reset' });
    assert.deepEqual(chooseMode('d', { requested: 'incr', previousUsable: false, changesKnown: true, previousWhy: 'resized', lenient }), { mode: 'full', note: 'diff not possible: resized' });
    assert.deepEqual(chooseMode('d', { requested: 'diff', previousUsable: false, changesKnown: false, previousWhy: 'resized', lenient }), { mode: 'full', note: 'diff not possible: resized' });
    assert.deepEqual(chooseMode('d', { requested: 'diff', ...base, lenient }), { mode: 'diff' });
  });

  it('a full read\'s check of reported changes counts the differing chunks no change touches, in whole chunks', () => {
    // 4 chunks of 4 KiB, the last one 1 KiB; 32-byte digests.
    const digests = (...d: number[]) => Buffer.concat(d.map((v) => Buffer.alloc(32, v)));
    const previous = new DiskIndex(13 * 1024, 4096, digests(1, 2, 3, 4));
    const now = new DiskIndex(13 * 1024, 4096, digests(1, 9, 9, 9));
    assert.equal(unreportedChanges(now, previous, []), 4096 + 4096 + 1024);
    // A change touching chunk 1 by one byte covers it; chunks 2 and 3 stay unreported.
    assert.equal(unreportedChanges(now, previous, [{ start: 8191, length: 1 }]), 4096 + 1024);
    assert.equal(unreportedChanges(now, previous, [{ start: 4096, length: 9 * 1024 }]), 0);
    assert.equal(unreportedChanges(previous, previous, []), 0);
  });
});
