/**
 * The StorageBackend conformance suite. Every backend runs it (see storage-*.test.ts):
 * write-once puts, ranged gets, listing, removal, and atomicity as a reader sees it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlreadyExistsError, IoError, NotFoundError } from '../src/errors.js';
import type { StorageBackend } from '../src/storage/backend.js';

export function storageConformance(name: string, make: () => Promise<{ backend: StorageBackend; cleanup: () => Promise<void> }>): void {
  describe(`StorageBackend conformance: ${name}`, () => {
    const withBackend = (fn: (b: StorageBackend) => Promise<void>) => async () => {
      const { backend, cleanup } = await make();
      try { await fn(backend); } finally { await cleanup(); }
    };

    it('put then get returns the same bytes, whole and in ranges', withBackend(async (b) => {
      const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) & 255));
      await b.put('data/ab/object', data);
      assert.deepEqual(await b.get('data/ab/object'), data);
      assert.deepEqual(await b.get('data/ab/object', { offset: 1000, length: 5000 }), data.subarray(1000, 6000));
      const into = Buffer.alloc(6000, 0xee);
      const got = await b.get('data/ab/object', { offset: 10, length: 20 }, into);
      assert.deepEqual(got, data.subarray(10, 30));
      assert.deepEqual(into.subarray(0, 20), data.subarray(10, 30), 'the range is read into the given buffer');
      assert.equal(into[20], 0xee, 'bytes after the range are left alone');
      assert.deepEqual(await b.get('data/ab/object', { offset: 99_000, length: 1000 }), data.subarray(99_000));
    }));

    it('stored bytes cannot be changed through the buffers put was given or get returned', withBackend(async (b) => {
      const data = Buffer.from('original content');
      const parts = [Buffer.from('part one '), Buffer.from('part two')];
      await b.put('m/whole', data);
      await b.put('m/parts', parts);
      data.fill(0x21);
      for (const p of parts) p.fill(0x21);
      const got = await b.get('m/whole');
      assert.equal(got.toString(), 'original content');
      got.fill(0x22);
      (await b.get('m/whole', { offset: 0, length: 8 })).fill(0x23);
      assert.equal((await b.get('m/whole')).toString(), 'original content');
      assert.equal((await b.get('m/parts')).toString(), 'part one part two');
    }));

    it('put accepts several parts and stores them concatenated', withBackend(async (b) => {
      await b.put('x/parts', [Buffer.from('abc'), Buffer.from('def')]);
      assert.equal((await b.get('x/parts')).toString(), 'abcdef');
    }));

    it('put is write-once: a second put of the name fails and keeps the first content', withBackend(async (b) => {
      await b.put('config', Buffer.from('first'));
      await assert.rejects(b.put('config', Buffer.from('second')), AlreadyExistsError);
      assert.equal((await b.get('config')).toString(), 'first');
      await assert.rejects(b.put('config', [Buffer.from('a much longer'), Buffer.from(' second value')]), AlreadyExistsError);
      assert.equal((await b.get('config')).toString(), 'first');
      assert.equal((await b.stat('config'))?.size, 5);
      assert.deepEqual(await b.list(''), ['config'], 'a refused put leaves nothing behind');
    }));

    it('a removed name can be written again', withBackend(async (b) => {
      await b.put('again', Buffer.from('one'));
      await b.remove('again');
      await b.put('again', Buffer.from('two'));
      assert.equal((await b.get('again')).toString(), 'two');
    }));

    it('get of a missing object is NotFoundError; a range past the end is IoError', withBackend(async (b) => {
      await assert.rejects(b.get('nope'), NotFoundError);
      await b.put('short', Buffer.from('12345'));
      await assert.rejects(b.get('short', { offset: 3, length: 10 }), IoError);
      await assert.rejects(b.get('short', { offset: 5, length: 1 }), IoError, 'a range that starts at the end');
      await assert.rejects(b.get('short', { offset: 100, length: 1 }), IoError, 'a range that starts beyond the end');
      await assert.rejects(b.get('short', { offset: 100, length: 1 }, Buffer.alloc(16)), IoError, 'the same into a buffer');
      assert.equal((await b.get('short', { offset: 0, length: 5 })).toString(), '12345', 'a range that ends at the end');
    }));

    it('stat reports size, or undefined when missing', withBackend(async (b) => {
      const before = Date.now();
      await b.put('s/one', Buffer.alloc(1234));
      const st = await b.stat('s/one');
      assert.equal(st?.size, 1234);
      // File systems round times down to their granularity: allow for one second of it.
      assert.ok(st && st.mtimeMs >= before - 1000 && st.mtimeMs <= Date.now() + 1000, `mtimeMs ${st?.mtimeMs} is the time of the put`);
      assert.equal(await b.stat('s/two'), undefined);
    }));

    it('list returns every name under a prefix, and nothing of unfinished puts', withBackend(async (b) => {
      await b.put('data/00/a', Buffer.from('a'));
      await b.put('data/01/b', Buffer.from('b'));
      await b.put('index/c', Buffer.from('c'));
      assert.deepEqual((await b.list('data/')).sort(), ['data/00/a', 'data/01/b']);
      assert.deepEqual(await b.list('index/'), ['index/c']);
      assert.deepEqual(await b.list('locks/'), []);
      assert.deepEqual((await b.list('')).sort(), ['data/00/a', 'data/01/b', 'index/c']);
      assert.deepEqual(await b.list('data/00'), ['data/00/a'], 'the trailing slash may be left out');
    }));

    it('list: a prefix names a folder, not the start of a name', withBackend(async (b) => {
      await b.put('data/00/a', Buffer.from('a'));
      await b.put('index/c', Buffer.from('c'));
      assert.deepEqual(await b.list('data/0'), [], 'data/0 is not the folder data/00');
      assert.deepEqual(await b.list('ind'), []);
      assert.deepEqual(await b.list('index/c'), [], 'an object is not a folder');
      assert.deepEqual(await b.list('index/c/'), []);
    }));

    it('remove deletes, and removing a missing object is not an error', withBackend(async (b) => {
      await b.put('r/x', Buffer.from('x'));
      await b.remove('r/x');
      assert.equal(await b.stat('r/x'), undefined);
      await b.remove('r/x');
    }));

    it('concurrent puts of one name: exactly one wins, readers see one whole value', withBackend(async (b) => {
      const values = Array.from({ length: 8 }, (_, i) => Buffer.alloc(64 * 1024, i + 1));
      const results = await Promise.allSettled(values.map((v) => b.put('race', v)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      const got = await b.get('race');
      assert.ok(values.some((v) => v.equals(got)), 'stored value is one of the written values, whole');
    }));

    it('rejects names that escape the repository', withBackend(async (b) => {
      for (const bad of ['../x', '/abs', 'a//b', 'a/../b', '.hidden', '']) {
        await assert.rejects(b.put(bad, Buffer.from('x')), TypeError, bad);
      }
    }));

    it('sweep keeps uploads of live processes and returns a count', withBackend(async (b) => {
      assert.equal(typeof await b.sweep(3600_000), 'number');
      await b.put('kept', Buffer.from('k'));
      await b.sweep(0);
      assert.equal((await b.get('kept')).toString(), 'k');
    }));
  });
}
