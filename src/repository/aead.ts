/**
 * AES-256-GCM on caller-owned memory: the native addon (native/aead.c, built by
 * scripts/build-native.mjs) when it is there, else Node's crypto with a copy. Both give the
 * same bytes; the addon saves the buffer Node allocates per call, which for 256 KiB blobs
 * cost more than the cipher (docs/benchmarks.md, "Encryption").
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { createRequire } from 'node:module';

export interface Aead {
  /** Encrypts `input` into `output` (same length; the same bytes, or not overlapping); writes the tag. */
  seal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, input: Uint8Array, output: Uint8Array, tag: Uint8Array): void;
  /** Decrypts `input` into `output`; false when the tag does not verify (then `output` holds garbage). */
  open(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, input: Uint8Array, output: Uint8Array, tag: Uint8Array): boolean;
}

export const nodeAead: Aead = {
  seal(key, nonce, ad, input, output, tag) {
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    c.setAAD(ad);
    output.set(c.update(input));
    c.final();
    tag.set(c.getAuthTag());
  },
  open(key, nonce, ad, input, output, tag) {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    d.setAAD(ad);
    d.setAuthTag(tag);
    output.set(d.update(input));
    try {
      d.final();
      return true;
    } catch {
      return false;
    }
  },
};

function loadNative(): Aead | undefined {
  if (process.env['VMBKP_NATIVE_AEAD'] === '0') return undefined;
  try {
    const addon = createRequire(import.meta.url)(new URL('../../../build/aead.node', import.meta.url).pathname) as Aead;
    return { seal: addon.seal, open: addon.open };
  } catch {
    return undefined;
  }
}

export const nativeAead: Aead | undefined = loadNative();
/** What this process seals and opens with. */
export const aead: Aead = nativeAead ?? nodeAead;
