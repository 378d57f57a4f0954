#!/usr/bin/env node
// Deterministic virtual-disk images for the tests and the benchmark.
//
//   node bench/disk-image.mjs make   --out base.img --size 2G [--seed 1]
//   node bench/disk-image.mjs mutate --in base.img --out gen1.img [--change 3] [--seed 2] [--extents gen1.json]
//
// `make` writes a sparse raw image as a sequence of regions, 64 KiB to 4 MiB each, of the
// kinds a guest's disk holds: holes never written (~42 %, left as real holes), written
// zeros (~3 %), text-like data that compresses (~25 %), random data that does not (~20 %,
// as compressed or encrypted files are), and copies of a few 1 MiB pieces (~10 %) that
// deduplicate at any chunk size up to 1 MiB.
// `mutate` copies an image and rewrites about --change percent of its 64 KiB blocks, in runs
// of 64 KiB to 4 MiB, as a guest would between two backups; --extents writes the rewritten
// byte ranges in the shape of vSphere's QueryChangedDiskAreas changedArea list
// ([{start, length}], sorted, merged), so that a test can play the part of CBT.
//
// The same seed and options give the same bytes on every machine: decisions come from a
// xoshiro128** generator and data from an AES-128-CTR keystream, both keyed by the seed.
// Types for TypeScript callers: disk-image.d.mts.
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

export const BLOCK = 64 * 1024;
/** Longest region or run, in blocks (4 MiB). */
const MAX_RUN = 64;
/** The pieces that dup regions repeat: few and aligned, so that chunks of them dedupe. */
export const PIECE = 1024 * 1024;
const PIECES = 16;
/** Bytes written at once: big writes, few system calls. */
const WRITE_BUFFER = 8 * 1024 * 1024;

/** Share of the image by kind, for `make`; mutate rewrites with text, random and dup only. */
const MAKE_MIX = [['hole', 0.42], ['zero', 0.03], ['text', 0.25], ['random', 0.20], ['dup', 0.10]];
const MUTATE_MIX = [['text', 0.6], ['random', 0.3], ['dup', 0.1]];

/** "512M", "2G", "4096" → bytes (binary units). */
export function parseSize(s) {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(String(s).trim());
  if (!m) throw new RangeError(`not a size: ${JSON.stringify(s)} (e.g. 512M, 2G)`);
  return Math.round(Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()));
}

// ---------------------------------------------------------------------------------------------
// Randomness: every stream is keyed by (operation, seed, purpose), so that `make` and `mutate`
// with the same seed differ, and a stream's bytes do not depend on how much another consumed.

function key(...parts) {
  return crypto.createHash('sha256').update(['vmbkp disk-image', ...parts].join('\0')).digest();
}

/** xoshiro128** (Blackman and Vigna), seeded from a SHA-256: 32-bit integer arithmetic only. */
class Decisions {
  constructor(...parts) {
    const k = key(...parts);
    this.s = new Uint32Array([k.readUInt32LE(0), k.readUInt32LE(4), k.readUInt32LE(8), k.readUInt32LE(12) | 1]);
  }

  /** A uniform 32-bit unsigned integer. */
  u32() {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform number in [0, 1). */
  unit() { return this.u32() / 4294967296; }

  /** A uniform integer in [0, n). */
  below(n) { return Math.floor(this.unit() * n); }

  /** A run length in blocks, 1 … MAX_RUN, mostly short (the product of two uniforms). */
  run() { return 1 + Math.floor(this.unit() * this.unit() * MAX_RUN); }

  pick(mix) {
    let x = this.unit();
    for (const [kind, share] of mix) { if (x < share) return kind; x -= share; }
    return mix[mix.length - 1][0];
  }
}

function rotl(x, k) { return (x << k) | (x >>> (32 - k)); }

const ZEROS = Buffer.alloc(WRITE_BUFFER);

/** An AES-128-CTR keystream over zeros: deterministic, and as fast as the CPU's AES. */
class KeyStream {
  constructor(...parts) {
    this.cipher = crypto.createCipheriv('aes-128-ctr', key(...parts).subarray(0, 16), Buffer.alloc(16));
  }

  /** The next `n` bytes of the stream. */
  next(n) {
    if (n > ZEROS.length) throw new RangeError(`at most ${ZEROS.length} keystream bytes at a time, asked for ${n}`);
    return this.cipher.update(ZEROS.subarray(0, n));
  }
}

// ---------------------------------------------------------------------------------------------
// Content

// Words with a rough Zipf weighting (a word of weight k is drawn about k times as often): text
// that compresses about as well as logs, configuration and source files do.
const VOCABULARY = [
  [12, 'the'], [8, 'a'], [7, 'of'], [6, 'to'], [6, 'and'], [5, 'in'], [5, 'is'], [4, 'for'], [4, 'on'],
  [4, 'with'], [3, 'not'], [3, 'by'], [3, 'from'], [3, 'at'], [3, 'it'], [3, 'as'], [3, '='], [3, '{'], [3, '}'],
  [2, 'return'], [2, 'const'], [2, 'if'], [2, 'else'], [2, 'null'], [2, 'true'], [2, 'false'], [2, 'INFO'],
  [2, 'WARN'], [2, 'ERROR'], [2, 'DEBUG'], [2, 'user'], [2, 'host'], [2, 'disk'], [2, 'file'], [2, 'value'],
  [2, 'name'], [2, 'path'], [2, 'size'], [2, 'time'], [2, 'id'], [2, '0'], [2, '1'], [2, '-'], [2, '#'],
  [1, 'kernel'], [1, 'service'], [1, 'started'], [1, 'stopped'], [1, 'failed'], [1, 'connection'],
  [1, 'request'], [1, 'response'], [1, 'header'], [1, 'content-type:'], [1, 'application/json'],
  [1, 'GET'], [1, 'POST'], [1, '/var/log/messages'], [1, '/usr/lib/x86_64-linux-gnu'], [1, 'systemd[1]:'],
  [1, 'sshd[4127]:'], [1, 'Accepted'], [1, 'publickey'], [1, 'session'], [1, 'opened'], [1, 'closed'],
  [1, 'database'], [1, 'table'], [1, 'index'], [1, 'select'], [1, 'insert'], [1, 'update'], [1, 'where'],
  [1, 'transaction'], [1, 'commit'], [1, 'rollback'], [1, 'snapshot'], [1, 'volume'], [1, 'mount'],
  [1, 'network'], [1, 'interface'], [1, 'eth0'], [1, 'address'], [1, '10.0.0.12'], [1, '192.168.1.1'],
  [1, 'port'], [1, '443'], [1, '8080'], [1, 'timeout'], [1, 'retry'], [1, 'backup'], [1, 'restore'],
  [1, 'cluster'], [1, 'node'], [1, 'machine'], [1, 'memory'], [1, 'cpu'], [1, 'load'], [1, 'average'],
  [1, 'function'], [1, 'class'], [1, 'import'], [1, 'export'], [1, 'string'], [1, 'number'], [1, 'object'],
  [1, 'error:'], [1, 'warning:'], [1, 'permission'], [1, 'denied'], [1, 'not'], [1, 'found'], [1, 'ok'],
  [1, '2026-11-29T23:41:07Z'], [1, '[   12.345678]'], [1, 'x86_64'], [1, 'UTF-8'], [1, 'localhost'],
];

// 256 word slots, so that one random byte picks a word with the weights above.
const WORD_START = new Uint32Array(256);
const WORD_LENGTH = new Uint8Array(256);
const WORDS = (() => {
  const slots = VOCABULARY.flatMap(([weight, word]) => Array(weight).fill(word));
  const bytes = [];
  for (let i = 0; i < 256; i++) {
    const word = Buffer.from(slots[i % slots.length]);
    WORD_START[i] = bytes.length;
    WORD_LENGTH[i] = word.length;
    bytes.push(...word);
  }
  return Uint8Array.from(bytes);
})();
const NEWLINE = 10;
const SPACE = 32;

/** Word salad, one keystream byte per word and one per separator (a newline about one in twelve). */
function wordSalad(out, stream) {
  const picks = stream.next(out.length * 2);
  let p = 0;
  for (let o = 0; o < out.length;) {
    const w = picks[p++];
    for (let i = WORD_START[w], end = i + WORD_LENGTH[w]; i < end && o < out.length; i++) out[o++] = WORDS[i];
    if (o < out.length) out[o++] = picks[p++] < 21 ? NEWLINE : SPACE;
  }
}

// Text is made of phrases: 32-byte pieces of a word salad, 4096 of them per stream, chosen
// at random. Copying whole phrases as 32-bit words runs at GB/s where a byte loop over words
// does not, and the mix compresses as a word salad does (3.4× with zstd level 1 on 256 KiB
// chunks).
const PHRASE = 32; // bytes: eight 32-bit words, copied unrolled below
const PHRASES = 4096;

/** Text-like content from one stream: its phrase table is made on first use. */
class TextSource {
  constructor(stream) {
    this.stream = stream;
    this.table = null;
  }

  fill(out) {
    if (out.byteOffset % 4 !== 0) { // never for our buffers; kept correct all the same
      const aligned = Buffer.alloc(out.length);
      this.fill(aligned);
      aligned.copy(out);
      return;
    }
    if (!this.table) {
      const salad = Buffer.alloc(PHRASE * PHRASES);
      wordSalad(salad, this.stream);
      this.table = new Uint32Array(salad.buffer, salad.byteOffset, salad.length / 4);
    }
    const t = this.table;
    const whole = Math.floor(out.length / PHRASE);
    const o = new Uint32Array(out.buffer, out.byteOffset, whole * (PHRASE / 4));
    // Phrase numbers read byte by byte: the same on a big-endian machine.
    const picks = this.stream.next(whole * 2);
    for (let i = 0, d = 0; i < whole; i++, d += 8) {
      const s = ((picks[2 * i] | (picks[2 * i + 1] << 8)) & (PHRASES - 1)) * 8;
      // Unrolled: four times the speed of an inner loop in V8.
      o[d] = t[s]; o[d + 1] = t[s + 1]; o[d + 2] = t[s + 2]; o[d + 3] = t[s + 3];
      o[d + 4] = t[s + 4]; o[d + 5] = t[s + 5]; o[d + 6] = t[s + 6]; o[d + 7] = t[s + 7];
    }
    // A tail shorter than a phrase (an image whose size is not a multiple of 32 bytes).
    const bytes = Buffer.from(t.buffer, t.byteOffset, t.byteLength);
    bytes.copy(out, whole * PHRASE, 0, out.length - whole * PHRASE);
  }
}

/** The repeated pieces: half text, half random, each from its own stream, made on first use. */
class Pieces {
  constructor(...parts) {
    this.parts = parts;
    this.made = new Map();
  }

  get(j) {
    let piece = this.made.get(j);
    if (!piece) {
      const stream = new KeyStream(...this.parts, 'piece', j);
      piece = Buffer.alloc(PIECE);
      if (j % 2 === 0) new TextSource(stream).fill(piece); else stream.next(PIECE).copy(piece);
      this.made.set(j, piece);
    }
    return piece;
  }
}

/**
 * Writes regions in order through big buffers: consecutive data regions go out in one
 * write, a hole is a skip, never a write, and the next buffer is filled while the last one
 * is being written.
 */
class RegionWriter {
  constructor(fh) {
    this.fh = fh;
    this.spare = Buffer.allocUnsafe(WRITE_BUFFER);
    this.buf = Buffer.allocUnsafe(WRITE_BUFFER);
    this.at = -1; // file offset of buf[0]; -1 when empty
    this.used = 0;
    this.writing = Promise.resolve(); // the write of `spare`, if any
  }

  /** Space for `length` bytes at file offset `pos`, to be filled by the caller. */
  async reserve(pos, length) {
    if (this.at >= 0 && (this.at + this.used !== pos || this.used + length > this.buf.length)) await this.send();
    if (this.at < 0) this.at = pos;
    const view = this.buf.subarray(this.used, this.used + length);
    this.used += length;
    return view;
  }

  /** Starts writing the current buffer and swaps in the spare once its own write is done. */
  async send() {
    if (this.at >= 0 && this.used > 0) {
      const previous = this.writing;
      this.writing = writeAll(this.fh, this.buf.subarray(0, this.used), this.at);
      this.writing.catch(() => {}); // reported where it is awaited, not as unhandled meanwhile
      await previous;
      [this.buf, this.spare] = [this.spare, this.buf];
    }
    this.at = -1;
    this.used = 0;
  }

  /** Writes what is left and waits for every write. */
  async flush() {
    await this.send();
    await this.writing;
  }
}

async function writeAll(fh, bytes, at) {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, at + done);
    done += bytesWritten;
  }
}

/** Everything one operation (make or mutate with a seed) draws on. */
class Content {
  constructor(op, seed) {
    this.decisions = new Decisions(op, seed, 'layout');
    this.stream = new KeyStream(op, seed, 'data');
    this.text = new TextSource(new KeyStream(op, seed, 'text'));
    this.pieces = new Pieces(op, seed);
  }

  /** Writes `length` bytes of `kind` at file offset `pos`. */
  async write(writer, kind, pos, length) {
    if (kind === 'hole') return;
    const view = await writer.reserve(pos, length);
    if (kind === 'zero') view.fill(0);
    else if (kind === 'text') this.text.fill(view);
    else if (kind === 'random') this.stream.next(length).copy(view);
    else {
      // A copy of one piece, at the disk offset modulo the piece size: any aligned chunk of up
      // to 1 MiB inside two such regions of the same piece holds the same bytes.
      const piece = this.pieces.get(this.decisions.below(PIECES));
      for (let o = 0; o < length;) {
        const from = (pos + o) % PIECE;
        const n = Math.min(length - o, PIECE - from);
        piece.copy(view, o, from, from + n);
        o += n;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// make and mutate

/**
 * Makes a sparse image of `size` bytes from `seed`. Returns its regions in order (what a
 * test needs to know where each kind is).
 * @param {{ out: string, size: number | string, seed?: number }} opts
 */
export async function make({ out, size, seed = 1 }) {
  const bytes = typeof size === 'number' ? size : parseSize(size);
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`bad image size: ${size}`);
  const content = new Content('make', seed);
  const decisions = content.decisions;
  const regions = [];
  const fh = await fs.open(out, 'w');
  try {
    await fh.truncate(bytes); // the holes: everything not written below
    const writer = new RegionWriter(fh);
    for (let pos = 0; pos < bytes;) {
      const kind = decisions.pick(MAKE_MIX);
      const length = Math.min(decisions.run() * BLOCK, bytes - pos);
      await content.write(writer, kind, pos, length);
      const last = regions[regions.length - 1];
      if (last && last.kind === kind) last.length += length;
      else regions.push({ start: pos, length, kind });
      pos += length;
    }
    await writer.flush();
  } finally {
    await fh.close();
  }
  return { size: bytes, regions };
}

/**
 * Copies `input` to `out` and rewrites about `change` percent of its 64 KiB blocks from
 * `seed`. Returns the rewritten ranges, sorted and merged, and writes them as JSON to
 * `extents` when given.
 * @param {{ input: string, out: string, change?: number, seed?: number, extents?: string }} opts
 */
export async function mutate({ input, out, change = 3, seed = 2, extents: extentsFile }) {
  if (!(change >= 0 && change <= 100)) throw new RangeError(`--change is a percentage, got ${change}`);
  // cp keeps the input's holes, clones the file where the file system can, and may turn runs
  // of zeros into holes too: the allocation can differ from the input's, the bytes never do.
  await promisify(execFile)('cp', ['--sparse=auto', '--reflink=auto', '--', input, out]);
  const size = (await fs.stat(out)).size;
  const blocks = Math.ceil(size / BLOCK);
  const content = new Content('mutate', seed);
  const decisions = content.decisions;

  // Which blocks change: runs at random places until the share is reached (the last run cut
  // short, so that the share is exact).
  const changed = new Uint8Array(blocks);
  const target = Math.min(blocks, Math.round((blocks * change) / 100));
  for (let count = 0; count < target;) {
    const n = Math.min(decisions.run(), blocks);
    const first = decisions.below(blocks - n + 1);
    for (let b = first; b < first + n && count < target; b++) if (!changed[b]) { changed[b] = 1; count++; }
  }
  const extents = [];
  for (let b = 0; b < blocks; b++) {
    if (!changed[b]) continue;
    const last = extents[extents.length - 1];
    const start = b * BLOCK;
    const length = Math.min(BLOCK, size - start);
    if (last && last.start + last.length === start) last.length += length;
    else extents.push({ start, length });
  }

  // What they change to: regions of new content inside each extent.
  const fh = await fs.open(out, 'r+');
  try {
    const writer = new RegionWriter(fh);
    for (const e of extents) {
      for (let pos = e.start; pos < e.start + e.length;) {
        const length = Math.min(decisions.run() * BLOCK, e.start + e.length - pos);
        await content.write(writer, decisions.pick(MUTATE_MIX), pos, length);
        pos += length;
      }
    }
    await writer.flush();
  } finally {
    await fh.close();
  }
  if (extentsFile) await fs.writeFile(extentsFile, JSON.stringify(extents));
  return { size, extents };
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = 'usage: disk-image.mjs make --out FILE --size SIZE [--seed N]\n'
  + '       disk-image.mjs mutate --in FILE --out FILE [--change PERCENT] [--seed N] [--extents FILE]\n';

async function main(argv) {
  const [cmd, ...rest] = argv;
  const opt = {};
  for (let i = 0; i < rest.length; i += 2) {
    const name = /^--([a-z]+)$/.exec(rest[i] ?? '')?.[1];
    if (!name || rest[i + 1] === undefined) throw new UsageError(`bad argument: ${rest[i]}`);
    opt[name] = rest[i + 1];
  }
  const number = (name, fallback) => {
    if (opt[name] === undefined) return fallback;
    const n = Number(opt[name]);
    if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${opt[name]}`);
    return n;
  };
  const need = (...names) => { for (const n of names) if (opt[n] === undefined) throw new UsageError(`${cmd} needs --${n}`); };
  if (cmd === 'make') {
    need('out', 'size');
    await make({ out: opt.out, size: opt.size, seed: number('seed', 1) });
  } else if (cmd === 'mutate') {
    need('in', 'out');
    await mutate({ input: opt.in, out: opt.out, change: number('change', 3), seed: number('seed', 2), extents: opt.extents });
  } else {
    throw new UsageError(cmd ? `unknown command: ${cmd}` : 'no command');
  }
}

class UsageError extends Error {}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(err instanceof UsageError ? `${err.message}\n${USAGE}` : `disk-image: ${err.message}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  });
}
