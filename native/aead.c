/*
 * AES-256-GCM into caller-owned memory, for the chunk workers. Node's crypto returns a new
 * buffer from every update(), and for 256 KiB blobs allocating, faulting in and copying that
 * buffer cost more than the cipher itself (docs/benchmarks.md, "Encryption"). This addon
 * calls the same OpenSSL that Node links (its EVP functions, exported by the node binary)
 * on the caller's buffers, shared worker slots included. Output is byte-for-byte what
 * Node's crypto produces; src/repository/aead.ts falls back to Node's crypto without it.
 *
 *   seal(key[32], nonce[12], ad, input, output, tag[16])          output = AES-256-GCM(input)
 *   open(key[32], nonce[12], ad, input, output, tag[16]) -> bool  false when the tag does not verify
 *
 * input and output have the same length and either do not overlap or are the same bytes.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <limits.h>

static int bytes(napi_env env, napi_value v, unsigned char **data, size_t *length) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, length, &p, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array");
    return 0;
  }
  *data = p;
  return 1;
}

static napi_value run(napi_env env, napi_callback_info info, int encrypt) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, "expected key, nonce, ad, input, output, tag");
    return NULL;
  }
  unsigned char *key, *nonce, *ad, *in, *out, *tag;
  size_t keyLen, nonceLen, adLen, inLen, outLen, tagLen;
  if (!bytes(env, argv[0], &key, &keyLen) || !bytes(env, argv[1], &nonce, &nonceLen) || !bytes(env, argv[2], &ad, &adLen)
      || !bytes(env, argv[3], &in, &inLen) || !bytes(env, argv[4], &out, &outLen) || !bytes(env, argv[5], &tag, &tagLen)) return NULL;
  if (keyLen != 32 || nonceLen != 12 || tagLen != 16 || inLen != outLen || inLen > INT_MAX || adLen > INT_MAX) {
    napi_throw_range_error(env, NULL, "bad key, nonce, tag or data length");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL, n = 0, verified = 0;
  if (encrypt) {
    ok = ok && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce)
      && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)adLen)
      && EVP_EncryptUpdate(ctx, out, &n, in, (int)inLen)
      && EVP_EncryptFinal_ex(ctx, out + n, &n)
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
  } else {
    ok = ok && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce)
      && EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)adLen)
      && EVP_DecryptUpdate(ctx, out, &n, in, (int)inLen)
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag);
    if (ok) verified = EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    napi_throw_error(env, NULL, "OpenSSL AES-256-GCM failed");
    return NULL;
  }
  napi_value result;
  napi_get_boolean(env, encrypt ? 1 : verified, &result);
  return result;
}

static napi_value seal(napi_env env, napi_callback_info info) { return run(env, info, 1); }
static napi_value open_(napi_env env, napi_callback_info info) { return run(env, info, 0); }

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &f);
  napi_set_named_property(env, exports, "seal", f);
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_, NULL, &f);
  napi_set_named_property(env, exports, "open", f);
  return exports;
}
