#!/usr/bin/env node
// Chunk-size measurement: what fixed-size chunking at 64 KiB … 4 MiB costs in stored bytes,
// incremental growth and index size, on the benchmark's images.
//
//   node bench/chunk-size.mjs [--size 2G] [--dir bench/out/chunk-size] [--keep] [--json FILE] [--threads N]
//   node bench/chunk-size.mjs --base base.img --next gen1.img [--json FILE]
//
// Without --base/--next it makes the two images itself with bench/disk-image.mjs
// (seed 1 for the base, seed 2 and a 3 % change for the next image) and deletes them
// afterwards unless --keep is given.
//
// For every chunk size it counts, as vmbkp stores data:
//   - the distinct non-zero chunks of the base image (all-zero chunks are not stored),
//     each compressed with zstd level 3; a chunk whose compressed form is not at least
//     1/64 smaller than the chunk is counted raw;
//   - the growth when the next image is added: chunks whose SHA-256 was not seen before,
//     compressed the same way;
//   - the index of a 1 TiB disk: 2^40 / chunk size entries of 32 bytes.
// Both images are read once per thread, in 4 MiB reads into reused buffers; every chunk
// size a thread owns is computed in the same pass. The chunk sizes are spread over
// --threads worker threads (default: 2, or 1 on a single CPU), since zstd is the cost.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseCliArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Compressor } from 'zstd-napi';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK_SIZES = [64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB, 4 * MiB];
const BLOCK = CHUNK_SIZES[0]; // zero detection granularity (the generator's block size too)
const READ = CHUNK_SIZES[CHUNK_SIZES.length - 1]; // one read covers a whole chunk of every size
/** zstd level: 3 unless --level (the workers get it from the main thread). */
let LEVEL = isMainThread ? 3 : workerData.level;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const generator = path.join(here, 'disk-image.mjs');

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node bench/chunk-size.mjs [--size 2G] [--dir DIR] [--keep] [--json FILE] [--threads N] [--level 3] [--sizes 64K,256K,…]\n'
    + '       node bench/chunk-size.mjs --base IMG --next IMG [--json FILE] …   (e.g. the ext4 images of bench/ext4-image.mjs)\n');
  process.exit(code);
}

function parseArgs(argv) {
  let values;
  try {
    ({ values } = parseCliArgs({ args: argv, strict: true, options: {
      size: { type: 'string', default: '2G' }, dir: { type: 'string' }, json: { type: 'string' },
      base: { type: 'string' }, next: { type: 'string' }, keep: { type: 'boolean', default: false },
      threads: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      level: { type: 'string', default: '3' }, sizes: { type: 'string' },
    } }));
  } catch (err) { console.error(err.message); usage(2); }
  if (values.help) usage(0);
  const resolved = (v) => (v === undefined ? null : path.resolve(v));
  const opt = {
    size: values.size, dir: resolved(values.dir) ?? path.join(repoRoot, 'bench/out/chunk-size'), keep: values.keep,
    json: resolved(values.json), base: resolved(values.base), next: resolved(values.next),
    threads: values.threads === undefined ? Math.min(2, os.availableParallelism())
      : Math.max(1, Math.min(CHUNK_SIZES.length, Number.parseInt(values.threads, 10) || 1)),
  };
  LEVEL = Number(values.level);
  if (!Number.isInteger(LEVEL) || LEVEL < 1 || LEVEL > 19) { console.error(`bad --level: ${values.level}`); usage(2); }
  opt.sizes = values.sizes === undefined ? CHUNK_SIZES : values.sizes.split(',').map((x) => {
    const m = /^(\d+)([KM])$/i.exec(x.trim());
    const n = m ? Number(m[1]) * (m[2].toUpperCase() === 'M' ? MiB : KiB) : NaN;
    if (!CHUNK_SIZES.includes(n)) { console.error(`--sizes: ${x} is not one of ${CHUNK_SIZES.map(fmtSize).join(', ')}`); usage(2); }
    return n;
  });
  if (!!opt.base !== !!opt.next) { console.error('--base and --next go together'); usage(2); }
  if (!opt.base && !/^\d+(\.\d+)?[KMGT]?$/i.test(opt.size)) { console.error(`bad --size: ${opt.size}`); usage(2); }
  return opt;
}

const log = (msg) => process.stderr.write(`[chunk-size] ${msg}\n`);
const fmtMiB = (b) => (b / MiB).toFixed(1);
const fmtSize = (b) => (b >= MiB ? `${b / MiB} MiB` : `${b / KiB} KiB`);

function makeImages(opt) {
  const created = fs.mkdirSync(opt.dir, { recursive: true }); // the first directory made, if any
  const base = path.join(opt.dir, 'base.img');
  const next = path.join(opt.dir, 'gen1.img');
  const extents = path.join(opt.dir, 'gen1.json');
  log(`making ${opt.size} images in ${opt.dir} with ${generator}`);
  execFileSync(process.execPath, [generator, 'make', '--out', base, '--size', opt.size, '--seed', '1'], { stdio: ['ignore', 'inherit', 'inherit'] });
  execFileSync(process.execPath, [generator, 'mutate', '--in', base, '--out', next, '--change', '3', '--seed', '2', '--extents', extents], { stdio: ['ignore', 'inherit', 'inherit'] });
  return { base, next, extents, made: [base, next, extents], createdDir: created };
}

/** Per chunk size: chunk identities seen, and the running counters. */
function newState(sizes) {
  return sizes.map((size) => ({
    size,
    seen: new Set(),
    base: { chunks: 0, zero: 0, nonZero: 0, distinct: 0, raw: 0, stored: 0, storedRaw: 0 },
    next: { chunks: 0, zero: 0, nonZero: 0, fresh: 0, raw: 0, stored: 0, storedRaw: 0 },
  }));
}

let compressor = null;

/** Bytes a chunk costs in the repository: zstd-3, or raw when that does not save 1/64. */
function storedSize(chunk, counters) {
  if (!compressor) {
    compressor = new Compressor();
    compressor.setParameters({ compressionLevel: LEVEL });
  }
  const packed = compressor.compress(chunk);
  if (packed.length >= chunk.length - (chunk.length >> 6)) { counters.storedRaw++; return chunk.length; }
  return packed.length;
}

/**
 * Reads `file` once (4 MiB reads into a reused buffer) and feeds every chunk size in `state`.
 * phase 'base' fills the sets of chunks seen; phase 'next' counts chunks not seen before (and
 * adds them, so a chunk repeated within the next image is stored once). With `compare`, the
 * same ranges of that file are read too, to count the 64 KiB blocks that differ.
 *
 * Every 64 KiB block is hashed once with SHA-256; a larger chunk is identified by the SHA-256
 * of its blocks' digests, which is equal exactly when the chunk's SHA-256 is (barring
 * collisions), and saves hashing the image once per chunk size.
 */
function scan(file, state, phase, compare) {
  const fd = fs.openSync(file, 'r');
  const cfd = compare ? fs.openSync(compare, 'r') : -1;
  const fileSize = fs.fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(READ);
  const cbuf = compare ? Buffer.allocUnsafe(READ) : null;
  const zero = Buffer.alloc(BLOCK);
  const blocksPerRead = READ / BLOCK;
  const zeroBlock = new Uint8Array(blocksPerRead);
  const digests = Buffer.alloc(blocksPerRead * 32);
  let changedBytes = 0;
  let lastLog = Date.now();
  for (let pos = 0; pos < fileSize; pos += READ) {
    const want = Math.min(READ, fileSize - pos);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(fd, buf, got, want - got, pos + got);
      if (n === 0) throw new Error(`${file}: unexpected end of file at ${pos + got}`);
      got += n;
    }
    if (got < READ) buf.fill(0, got); // a short last chunk reads as zero-padded, as a disk would
    if (compare) {
      let cgot = 0;
      while (cgot < want) {
        const n = fs.readSync(cfd, cbuf, cgot, want - cgot, pos + cgot);
        if (n === 0) break;
        cgot += n;
      }
      if (cgot < READ) cbuf.fill(0, cgot);
    }
    const valid = Math.ceil(want / BLOCK) * BLOCK; // chunks past the end of the disk do not exist
    for (let b = 0; b < blocksPerRead; b++) {
      const s = b * BLOCK;
      const block = buf.subarray(s, s + BLOCK);
      zeroBlock[b] = block.equals(zero) ? 1 : 0;
      if (zeroBlock[b]) digests.fill(0, b * 32, b * 32 + 32);
      else crypto.createHash('sha256').update(block).digest().copy(digests, b * 32);
      if (compare && s < valid && !block.equals(cbuf.subarray(s, s + BLOCK))) changedBytes += BLOCK;
    }
    for (const st of state) {
      const c = st[phase];
      const per = st.size / BLOCK;
      for (let off = 0; off < valid; off += st.size) {
        c.chunks++;
        const b0 = off / BLOCK;
        let isZero = true;
        for (let b = b0; b < b0 + per; b++) if (!zeroBlock[b]) { isZero = false; break; }
        if (isZero) { c.zero++; continue; }
        c.nonZero++;
        const id = per === 1
          ? digests.toString('latin1', b0 * 32, b0 * 32 + 32)
          : crypto.createHash('sha256').update(digests.subarray(b0 * 32, (b0 + per) * 32)).digest('latin1');
        if (st.seen.has(id)) continue;
        st.seen.add(id);
        if (phase === 'base') c.distinct++; else c.fresh++;
        const chunk = buf.subarray(off, off + st.size);
        c.raw += chunk.length;
        c.stored += storedSize(chunk, c);
      }
    }
    if (Date.now() - lastLog > 10000) {
      lastLog = Date.now();
      log(`${phase} (${state.map((st) => fmtSize(st.size)).join(', ')}): ${fmtMiB(pos + want)} / ${fmtMiB(fileSize)} MiB`);
    }
  }
  fs.closeSync(fd);
  if (cfd >= 0) fs.closeSync(cfd);
  return { fileSize, changedBytes };
}

/** Both passes for some chunk sizes; what a worker thread runs. */
function measure(sizes, base, next) {
  const state = newState(sizes);
  const b = scan(base, state, 'base', null);
  const n = scan(next, state, 'next', base);
  return {
    baseSize: b.fileSize, nextSize: n.fileSize, changedBytes: n.changedBytes,
    rows: state.map((st) => ({ chunkSize: st.size, base: st.base, next: st.next })),
  };
}

/** Spreads the chunk sizes round-robin over `threads` worker threads (compression is the cost). */
async function measureParallel(sizes, base, next, threads) {
  const groups = Array.from({ length: threads }, () => []);
  sizes.forEach((s, i) => groups[i % threads].push(s));
  const results = await Promise.all(groups.filter((g) => g.length).map((sizes) => new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { sizes, base, next, level: LEVEL } });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`worker exited with code ${code}`)); });
  })));
  const rows = results.flatMap((r) => r.rows).sort((a, b) => a.chunkSize - b.chunkSize);
  return { ...results[0], rows };
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  let images;
  const t0 = process.hrtime.bigint();
  if (opt.base) images = { base: opt.base, next: opt.next, made: [] };
  else images = makeImages(opt);
  const tMade = process.hrtime.bigint();

  log(`reading ${images.base}, then ${images.next} (and ${images.base} again to count changed blocks); `
    + `${opt.threads} thread${opt.threads > 1 ? 's' : ''}`);
  const m = opt.threads > 1
    ? await measureParallel(opt.sizes, images.base, images.next, opt.threads)
    : measure(opt.sizes, images.base, images.next);
  const tDone = process.hrtime.bigint();
  const b = { fileSize: m.baseSize };
  const n = { fileSize: m.nextSize, changedBytes: m.changedBytes };
  if (b.fileSize !== n.fileSize) log(`warning: the images differ in size (${b.fileSize} vs ${n.fileSize} bytes)`);

  const rows = m.rows.map((r) => {
    const indexEntries = 2 ** 40 / r.chunkSize;
    return { ...r, index1TiB: { chunks: indexEntries, bytes: indexEntries * 32 } };
  });

  const out = [];
  out.push(`## Chunk size`);
  out.push('');
  out.push(`Base image ${path.basename(images.base)}: ${fmtMiB(b.fileSize)} MiB; next image ${path.basename(images.next)}: `
    + `${fmtMiB(n.changedBytes)} MiB in 64 KiB blocks differ from the base (${(100 * n.changedBytes / n.fileSize).toFixed(2)} %).`);
  out.push(`Non-zero chunks only; chunks stored once per SHA-256, zstd level ${LEVEL}, raw if compression saves < 1/64.`);
  out.push('');
  out.push('| chunk | base chunks (non-zero / distinct) | base stored MiB | next: new chunks | next growth MiB | growth ÷ changed data | chunks per 1 TiB disk | index per 1 TiB disk |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const amp = n.changedBytes ? (r.next.stored / n.changedBytes).toFixed(2) : 'n/a';
    out.push(`| ${fmtSize(r.chunkSize)} | ${r.base.nonZero} / ${r.base.distinct} | ${fmtMiB(r.base.stored)} | ${r.next.fresh} | ${fmtMiB(r.next.stored)} | ${amp} | `
      + `${r.index1TiB.chunks.toLocaleString('en-US')} | ${fmtMiB(r.index1TiB.bytes)} MiB |`);
  }
  out.push('');
  out.push(`(${os.availableParallelism()} CPUs, ${opt.threads} threads, node ${process.version}; measured in ${(Number(tDone - tMade) / 1e9).toFixed(1)} s`
    + `${images.made.length ? `, images made in ${(Number(tMade - t0) / 1e9).toFixed(1)} s` : ''}.)`);
  process.stdout.write(out.join('\n') + '\n');

  if (opt.json) {
    fs.mkdirSync(path.dirname(opt.json), { recursive: true });
    fs.writeFileSync(opt.json, JSON.stringify({
      base: images.base, next: images.next, imageBytes: b.fileSize, changedBytes: n.changedBytes,
      level: LEVEL, node: process.version, threads: opt.threads, rows,
      seconds: { makeImages: Number(tMade - t0) / 1e9, measure: Number(tDone - tMade) / 1e9 },
    }, null, 2) + '\n');
    log(`wrote ${opt.json}`);
  }
  if (images.made.length && !opt.keep) {
    for (const f of images.made) fs.rmSync(f, { force: true });
    // Remove the directories this run made (e.g. bench/out and bench/out/chunk-size), if empty.
    if (images.createdDir) {
      for (let dir = opt.dir; ; dir = path.dirname(dir)) {
        try { fs.rmdirSync(dir); } catch { break; /* not empty: not only ours */ }
        if (dir === path.resolve(images.createdDir)) break;
      }
    }
  }
}

if (isMainThread) {
  main().catch((err) => {
    console.error(`[chunk-size] failed: ${err?.stack ?? err}`);
    process.exit(1);
  });
} else {
  parentPort.postMessage(measure(workerData.sizes, workerData.base, workerData.next));
}
