/**
 * The native AES-256-GCM (native/aead.c) against Node's crypto: the same bytes either way,
 * in place and into shared memory, and a tag that fails to verify for any changed byte.
 * CI builds the addon (setup installs the compiler): its absence is a failure here, not a
 * silent slowdown.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { nativeAead, nodeAead } from '../src/repository/aead.js';

const key = randomBytes(32);
const nonce = randomBytes(12);
const ad = randomBytes(38);

describe('AES-256-GCM on caller-owned memory', () => {
  it('the native addon is built and loaded', () => {
    assert.ok(nativeAead, 'build/aead.node did not load: run npm run build (needs a C compiler)');
  });

  it('seals to the same bytes and tag as Node crypto, and each opens the other', () => {
    const native = nativeAead!;
    for (const n of [0, 1, 15, 16, 17, 4096, 262144 + 3]) {
      const plain = randomBytes(n);
      const a = Buffer.alloc(n), ta = Buffer.alloc(16), b = Buffer.alloc(n), tb = Buffer.alloc(16);
      native.seal(key, nonce, ad, plain, a, ta);
      nodeAead.seal(key, nonce, ad, plain, b, tb);
      assert.deepEqual(a, b, `ciphertext of ${n} bytes`);
      assert.deepEqual(ta, tb, `tag of ${n} bytes`);
      const back = Buffer.alloc(n);
      assert.equal(native.open(key, nonce, ad, b, back, tb), true);
      assert.deepEqual(back, plain);
      assert.equal(nodeAead.open(key, nonce, ad, a, back, ta), true);
      assert.deepEqual(back, plain);
    }
  });

  it('works in place and on shared memory (worker slots)', () => {
    const native = nativeAead!;
    const plain = randomBytes(65536);
    const shared = Buffer.from(new SharedArrayBuffer(65536 + 100)).subarray(50, 50 + 65536);
    shared.set(plain);
    const tag = Buffer.alloc(16), expected = Buffer.alloc(65536), expectedTag = Buffer.alloc(16);
    nodeAead.seal(key, nonce, ad, plain, expected, expectedTag);
    native.seal(key, nonce, ad, shared, shared, tag);
    assert.deepEqual(Buffer.from(shared), expected);
    assert.deepEqual(tag, expectedTag);
    assert.equal(native.open(key, nonce, ad, shared, shared, tag), true);
    assert.deepEqual(Buffer.from(shared), plain);
  });

  it('refuses a changed ciphertext, tag, nonce, associated data or key', () => {
    for (const impl of [nativeAead!, nodeAead]) {
      const plain = randomBytes(1000);
      const sealed = Buffer.alloc(1000), tag = Buffer.alloc(16), out = Buffer.alloc(1000);
      impl.seal(key, nonce, ad, plain, sealed, tag);
      const flip = (b: Buffer, i: number) => { const c = Buffer.from(b); c[i]! ^= 1; return c; };
      assert.equal(impl.open(key, nonce, ad, flip(sealed, 999), out, tag), false);
      assert.equal(impl.open(key, nonce, ad, sealed, out, flip(tag, 0)), false);
      assert.equal(impl.open(key, flip(nonce, 11), ad, sealed, out, tag), false);
      assert.equal(impl.open(key, nonce, flip(ad, 37), sealed, out, tag), false);
      assert.equal(impl.open(flip(key, 5), nonce, ad, sealed, out, tag), false);
      assert.equal(impl.open(key, nonce, ad, sealed, out, tag), true);
    }
  });

  it('rejects wrong lengths instead of reading past a buffer', () => {
    const native = nativeAead!;
    assert.throws(() => native.seal(key.subarray(0, 16), nonce, ad, Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(16)), RangeError);
    assert.throws(() => native.seal(key, nonce, ad, Buffer.alloc(4), Buffer.alloc(5), Buffer.alloc(16)), RangeError);
    assert.throws(() => native.seal(key, nonce, ad, Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(8)), RangeError);
  });
});
