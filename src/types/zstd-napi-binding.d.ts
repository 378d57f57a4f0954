/** The part of zstd-napi's native binding vmbkp uses (the package types it, but not under this path). */
declare module 'zstd-napi/binding.js' {
  class CCtx {
    compress(dstBuf: Uint8Array, srcBuf: Uint8Array, level: number): number;
  }
  class DCtx {
    decompress(dstBuf: Uint8Array, srcBuf: Uint8Array): number;
  }
  function compressBound(srcSize: number): number;
  const binding: { CCtx: typeof CCtx; DCtx: typeof DCtx; compressBound: typeof compressBound };
  export default binding;
}
