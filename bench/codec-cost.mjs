#!/usr/bin/env node
// What encryption costs per chunk, on one thread: the blob codec of a plaintext repository
// against that of an encrypted one (HMAC-SHA256 ids, AES-256-GCM seal and open), on the
// non-zero chunks of a disk image, and the parts of a seal on their own.
//
//   node bench/codec-cost.mjs [--image IMG] [--size 2G] [--mib 512] [--reps 3]   (after `npm run build`)
//
// Without --image it makes the benchmark's base image (bench/disk-image.mjs, seed 1) in a
// temporary directory and deletes it afterwards. The first --mib MiB of non-zero 256 KiB
// chunks are read into memory; every figure is the best of --reps passes over them. The
// machine's own AES-256-GCM speed, for comparison: `openssl speed -evp aes-256-gcm -bytes 262144`.
//
// Report (Markdown) on stdout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { createBlobCodec } = await import(path.join(root, 'dist/src/repository/blob-codec.js'));
const { deriveKeys, newMasterKey, sealInto } = await import(path.join(root, 'dist/src/repository/encryption.js'));

const { values: opts } = parseArgs({
  options: {
    image: { type: 'string' }, size: { type: 'string', default: '2G' },
    mib: { type: 'string', default: '512' }, reps: { type: 'string', default: '3' },
  },
});
const CHUNK = 256 * 1024;
const MiB = 1024 * 1024;
const reps = Number(opts.reps);

let tmp;
let image = opts.image;
if (!image) {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmbkp-codec-cost-'));
  image = path.join(tmp, 'base.img');
  execFileSync(process.execPath, [path.join(root, 'bench/disk-image.mjs'), 'make', '--out', image, '--size', opts.size, '--seed', '1'], { stdio: 'inherit' });
}
const chunks = [];
try {
  const fd = fs.openSync(image, 'r');
  const size = fs.fstatSync(fd).size;
  const zero = Buffer.alloc(CHUNK);
  const want = Number(opts.mib) * MiB / CHUNK;
  for (let off = 0; off < size && chunks.length < want; off += CHUNK) {
    const b = Buffer.allocUnsafe(CHUNK);
    fs.readSync(fd, b, 0, CHUNK, off);
    if (!b.equals(zero)) chunks.push(b);
  }
  fs.closeSync(fd);
} finally {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

const data = chunks.length * CHUNK / MiB;
const keys = deriveKeys(newMasterKey());
const plain = createBlobCodec({ compressionLevel: 1 });
const enc = createBlobCodec({ compressionLevel: 1, keys });
const ids = { plain: chunks.map((c) => plain.id(c)), enc: chunks.map((c) => enc.id(c)) };
const out = Buffer.allocUnsafe(CHUNK * 2);
const rows = [];
function measure(name, fn) {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  rows.push({ name, ms: best });
  return best;
}

const storedOf = (codec, idList) => chunks.map((c, i) => {
  const o = Buffer.allocUnsafe(CHUNK * 2);
  const r = codec.encodeInto(idList[i], 0, c, o);
  return { data: r.inOutput ? Buffer.from(o.subarray(0, r.length)) : c, compression: r.compression };
});
const stored = { plain: storedOf(plain, ids.plain), enc: storedOf(enc, ids.enc) };
const header = (idList, s, i) => ({ id: idList[i], type: 0, compression: s.compression, rawLength: CHUNK });
const dout = Buffer.allocUnsafe(CHUNK);
const ad = Buffer.alloc(38);
const empty = Buffer.alloc(0);

measure('id: SHA-256 (plaintext)', () => { for (const c of chunks) plain.id(c); });
measure('id: HMAC-SHA256 (encrypted)', () => { for (const c of chunks) enc.id(c); });
measure('encode, plaintext (zstd 1)', () => { chunks.forEach((c, i) => plain.encodeInto(ids.plain[i], 0, c, out)); });
measure('encode, encrypted (zstd 1 + seal)', () => { chunks.forEach((c, i) => enc.encodeInto(ids.enc[i], 0, c, out)); });
measure('decode + verify, plaintext', () => { stored.plain.forEach((s, i) => { plain.decodeInto(header(ids.plain, s, i), s.data, dout); plain.id(dout); }); });
measure('decode + verify, encrypted', () => { stored.enc.forEach((s, i) => { enc.decodeInto(header(ids.enc, s, i), s.data, dout); enc.id(dout); }); });
measure('part of a seal: sealInto of a whole 256 KiB chunk', () => { for (const c of chunks) sealInto(keys.data, ad, c, out); });
measure('part of a seal: createCipheriv + setAAD + final, no data', () => {
  for (let i = 0; i < chunks.length; i++) {
    const c = crypto.createCipheriv('aes-256-gcm', keys.data, crypto.randomBytes(12), { authTagLength: 16 });
    c.setAAD(ad); c.update(empty); c.final(); c.getAuthTag();
  }
});
measure('part of a seal: copy 256 KiB into a buffer (out.set)', () => { for (const c of chunks) out.set(c); });

const uncompressed = stored.plain.filter((s) => s.compression === 0).length;
const storedMiB = stored.plain.reduce((n, s) => n + s.data.length, 0) / MiB;
const lines = [
  `## Codec cost per chunk, one thread (${chunks.length} non-zero 256 KiB chunks, ${data.toFixed(0)} MiB; best of ${reps})`,
  '',
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, OpenSSL ${process.versions.openssl}. `
    + `Stored at zstd level 1: ${storedMiB.toFixed(1)} MiB, ${uncompressed} of ${chunks.length} chunks kept uncompressed.`,
  '',
  '| step | ms | MiB/s of chunks | µs per chunk |',
  '|---|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.ms.toFixed(0)} | ${(data / (r.ms / 1000)).toFixed(0)} | ${(r.ms * 1000 / chunks.length).toFixed(1)} |`),
  '',
];
const ratio = (a, b) => (rows.find((r) => r.name === a).ms / rows.find((r) => r.name === b).ms).toFixed(2);
lines.push(`- HMAC-SHA256 ÷ SHA-256: ${ratio('id: HMAC-SHA256 (encrypted)', 'id: SHA-256 (plaintext)')}×`);
lines.push(`- encode encrypted ÷ plaintext: ${ratio('encode, encrypted (zstd 1 + seal)', 'encode, plaintext (zstd 1)')}×`);
lines.push(`- decode + verify encrypted ÷ plaintext: ${ratio('decode + verify, encrypted', 'decode + verify, plaintext')}×`);
lines.push('');
process.stdout.write(lines.join('\n'));
