#!/usr/bin/env node
// What each zstd level costs and saves on an image's non-zero chunks, one thread, as vmbkp
// compresses them (one frame per chunk; a chunk whose frame is not smaller is stored raw).
//
//   node bench/zstd-level.mjs --image IMG [--chunk 256K] [--levels 1,2,3,4,5,6] [--reps 2]
//
// e.g. on bench/ext4-image.mjs's base.img (real files) or bench/disk-image.mjs's (synthetic).
// Every figure is the best of --reps passes (CPU time of this thread). Report on stdout.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Compressor } from 'zstd-napi';

const { values: o } = parseArgs({ options: {
  image: { type: 'string' }, chunk: { type: 'string', default: '256K' }, levels: { type: 'string', default: '1,2,3,4,5,6' }, reps: { type: 'string', default: '2' },
} });
if (!o.image) { process.stderr.write('usage: node bench/zstd-level.mjs --image IMG [--chunk 256K] [--levels 1,2,3] [--reps 2]\n'); process.exit(2); }
const m = /^(\d+)([KM])$/i.exec(o.chunk);
const C = m ? Number(m[1]) * (m[2].toUpperCase() === 'M' ? 1024 * 1024 : 1024) : NaN;
if (!C) { process.stderr.write(`bad --chunk: ${o.chunk}\n`); process.exit(2); }
const fd = fs.openSync(o.image, 'r');
const size = fs.fstatSync(fd).size;
const chunks = [];
for (let off = 0; off < size; off += C) {
  const b = Buffer.alloc(Math.min(C, size - off));
  fs.readSync(fd, b, 0, b.length, off);
  if (b.some((x) => x !== 0)) chunks.push(b);
}
const total = chunks.reduce((n, c) => n + c.length, 0);
const MiB = 2 ** 20;
console.log(`${o.image}: ${chunks.length} non-zero chunks of ${o.chunk}, ${(total / MiB).toFixed(1)} MiB; one frame per chunk`);
console.log('');
console.log('| level | stored MiB | ratio | CPU s | MiB/s |');
console.log('|---:|---:|---:|---:|---:|');
for (const level of o.levels.split(',').map(Number)) {
  const c = new Compressor();
  c.setParameters({ compressionLevel: level });
  let best = Infinity;
  let out = 0;
  for (let rep = 0; rep < Number(o.reps); rep++) {
    const t = process.cpuUsage();
    out = 0;
    for (const ch of chunks) out += Math.min(c.compress(ch).length, ch.length);
    const u = process.cpuUsage(t);
    best = Math.min(best, (u.user + u.system) / 1e6);
  }
  console.log(`| ${level} | ${(out / MiB).toFixed(1)} | ${(total / out).toFixed(2)} | ${best.toFixed(2)} | ${(total / MiB / best).toFixed(0)} |`);
}
