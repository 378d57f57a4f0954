/**
 * Writes a lookup file (lookup-file.ts): an existing one, if any, merged with index files it
 * does not cover yet, in memory bounded whatever their size. The new entries are first
 * spread over 256 partition files by their digest's first byte (digests are SHA-256 or
 * HMAC-SHA-256, so evenly), then each partition is sorted in memory and merged with the
 * same range of the existing file. The result is written beside the final name and renamed
 * over it once durable: a crash leaves the previous file (or none), never a half-written one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IoError, NotFoundError, RepositoryDamagedError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { DIGEST_LENGTH } from './digest.js';
import { indexFileTables } from './index-file.js';
import { ENTRY_BODY, ENTRY_SIZE, HEADER_SIZE, type LookupFile, PACK_SIZE, bucketOf, crc32, encodeHeader, entryCrc, fanoutBitsFor } from './lookup-file.js';

const PARTITIONS = 256;
const PARTITION_BUFFER = 64 * 1024;
const OUT_BUFFER = 1 << 20;
/** Index files read ahead of the one being partitioned: on object storage each read is a round trip. */
const READ_AHEAD = 8;
/** Existing entries read at once while merging. */
const MERGE_CHUNK = Math.floor((4 << 20) / ENTRY_SIZE);

export interface BuildInput {
  /** The lookup file to write (replaced atomically). */
  readonly path: string;
  readonly repositoryId: string;
  /** The current lookup file: its entries are kept (they win over new ones of the same digest). */
  readonly base?: LookupFile;
  /** Index files to merge in, in listed order (the first location of a digest wins). */
  readonly names: readonly string[];
  /** An index file's checked, opened content. */
  read(name: string): Promise<Buffer>;
  /** A damaged index file: reported here and left out (not covered), or thrown without it. */
  readonly onDamaged?: (err: RepositoryDamagedError) => void;
}

export interface BuildResult {
  /** Index files that vanished between listing and reading (gc rewrote the index). */
  readonly vanished: number;
}

/** Appends fixed-size records to a file through a buffer. */
class Appender {
  private readonly buf: Buffer;
  private used = 0;
  constructor(private readonly fd: number, private readonly size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  push(src: Buffer, from: number, length: number): void {
    if (this.used + length > this.size) this.flush();
    if (length > this.size) {
      // Larger than the buffer (a fanout of 2^18 buckets or more): written through.
      for (let done = 0; done < length;) done += fs.writeSync(this.fd, src, from + done, length - done);
      return;
    }
    src.copy(this.buf, this.used, from, from + length);
    this.used += length;
  }
  flush(): void {
    let done = 0;
    while (done < this.used) done += fs.writeSync(this.fd, this.buf, done, this.used - done);
    this.used = 0;
  }
}

export async function buildLookupFile(input: BuildInput): Promise<BuildResult> {
  const dir = path.dirname(input.path);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  removeLeftovers(dir);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const work = path.join(dir, `build-${tag}.tmp`);
  const out = path.join(dir, `lookup-${tag}.tmp`);
  fs.mkdirSync(work);
  try {
    const parts = await partition(input, work);
    await failpoint('lookup:partitioned');
    await writeMerged(input, parts, out);
    fs.renameSync(out, input.path);
    syncDir(dir);
    return { vanished: parts.vanished };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(out, { force: true });
  }
}

interface Partitioned {
  readonly counts: Uint32Array;
  readonly newEntries: number;
  readonly newPacks: number;
  readonly covered: string[];
  readonly vanished: number;
  readonly work: string;
}

const partName = (work: string, p: number) => path.join(work, `part-${p}`);
const packsName = (work: string) => path.join(work, 'packs');

async function partition(input: BuildInput, work: string): Promise<Partitioned> {
  const counts = new Uint32Array(PARTITIONS);
  const buffers: Buffer[] = [];
  const used = new Uint32Array(PARTITIONS);
  const flushPart = (p: number) => {
    if (used[p]) fs.appendFileSync(partName(work, p), buffers[p]!.subarray(0, used[p]));
    used[p] = 0;
  };
  const packsFd = fs.openSync(packsName(work), 'w');
  const packs = new Appender(packsFd, OUT_BUFFER);
  const basePacks = input.base?.header.packCount ?? 0;
  let newPacks = 0, newEntries = 0, vanished = 0;
  const covered: string[] = [];
  const pack = Buffer.alloc(PACK_SIZE);
  try {
    const reads: (Promise<Buffer> | undefined)[] = [];
    const readAhead = (i: number): void => {
      if (i >= input.names.length || reads[i]) return;
      const r = input.read(input.names[i]!);
      r.catch(() => {}); // awaited below
      reads[i] = r;
    };
    for (let i = 0; i < READ_AHEAD; i++) readAhead(i);
    for (const [i, name] of input.names.entries()) {
      readAhead(i + READ_AHEAD);
      let t: ReturnType<typeof indexFileTables>;
      try {
        t = indexFileTables(await reads[i]!, name);
      } catch (err) {
        if (err instanceof NotFoundError) { vanished++; continue; }
        if (input.onDamaged && err instanceof RepositoryDamagedError) { input.onDamaged(err); continue; }
        throw err;
      } finally {
        reads[i] = undefined;
      }
      for (let k = 0; k < t.packCount; k++) {
        t.packs.copy(pack, 0, k * DIGEST_LENGTH, (k + 1) * DIGEST_LENGTH);
        pack.writeUInt32LE(crc32(pack, 0, DIGEST_LENGTH), DIGEST_LENGTH);
        packs.push(pack, 0, PACK_SIZE);
      }
      const packBase = basePacks + newPacks;
      for (let e = 0; e < t.count; e++) {
        const from = e * (ENTRY_BODY);
        const p = t.entries[from]!;
        const buf = buffers[p] ??= Buffer.allocUnsafe(PARTITION_BUFFER - (PARTITION_BUFFER % ENTRY_SIZE));
        if (used[p]! + ENTRY_SIZE > buf.length) flushPart(p);
        const at = used[p]!;
        t.entries.copy(buf, at, from, from + ENTRY_BODY);
        buf.writeUInt32LE(buf.readUInt32LE(at + DIGEST_LENGTH) + packBase, at + DIGEST_LENGTH);
        buf.writeUInt32LE(entryCrc(buf, at), at + ENTRY_BODY);
        used[p] = at + ENTRY_SIZE;
        counts[p]!++;
      }
      newPacks += t.packCount;
      newEntries += t.count;
      covered.push(name);
    }
    for (let p = 0; p < PARTITIONS; p++) flushPart(p);
    packs.flush();
  } finally {
    fs.closeSync(packsFd);
  }
  return { counts, newEntries, newPacks, covered, vanished, work };
}

/** One partition's entries sorted by digest, the first of equal digests kept (the first listed). */
function sortedPartition(work: string, p: number, count: number): Buffer {
  if (count === 0) return Buffer.alloc(0);
  if (count >= 1 << 24) throw new IoError(`building the local index cache failed: ${count} new blobs share the digest byte ${p} (at most ${(1 << 24) - 1})`);
  const part = fs.readFileSync(partName(work, p));
  // Sorted natively on 40 bits of digest (bytes 1-5; byte 0 is the partition's) and the
  // listed order; runs of equal 40-bit prefixes are then ordered by the whole digest.
  const keys = new BigUint64Array(count);
  for (let i = 0; i < count; i++) keys[i] = ((part.readBigUInt64BE(i * ENTRY_SIZE) & 0x00ffffffffff0000n) << 8n) | BigInt(i);
  keys.sort();
  const order: number[] = new Array<number>(count);
  for (let i = 0; i < count; i++) order[i] = Number(keys[i]! & 0xffffffn);
  for (let i = 0; i < count;) {
    let j = i + 1;
    while (j < count && keys[j]! >> 24n === keys[i]! >> 24n) j++;
    if (j - i > 1) {
      const run = order.slice(i, j).sort((a, b) => part.compare(part, b * ENTRY_SIZE, b * ENTRY_SIZE + DIGEST_LENGTH, a * ENTRY_SIZE, a * ENTRY_SIZE + DIGEST_LENGTH) || a - b);
      for (let k = 0; k < run.length; k++) order[i + k] = run[k]!;
    }
    i = j;
  }
  const sorted = Buffer.allocUnsafe(count * ENTRY_SIZE);
  let n = 0;
  for (let i = 0; i < count; i++) {
    const from = order[i]! * ENTRY_SIZE;
    if (n > 0 && part.compare(sorted, (n - 1) * ENTRY_SIZE, (n - 1) * ENTRY_SIZE + DIGEST_LENGTH, from, from + DIGEST_LENGTH) === 0) continue;
    part.copy(sorted, n * ENTRY_SIZE, from, from + ENTRY_SIZE);
    n++;
  }
  return sorted.subarray(0, n * ENTRY_SIZE);
}

async function writeMerged(input: BuildInput, parts: Partitioned, out: string): Promise<void> {
  const base = input.base;
  const total = (base?.count ?? 0) + parts.newEntries;
  const bits = fanoutBitsFor(total);
  const bucketCounts = new Uint32Array((2 ** bits) + 1);
  const fd = fs.openSync(out, 'w', 0o600);
  try {
    const w = new Appender(fd, OUT_BUFFER);
    w.push(Buffer.alloc(HEADER_SIZE), 0, HEADER_SIZE);
    let written = 0;
    const emit = (buf: Buffer, at: number) => {
      w.push(buf, at, ENTRY_SIZE);
      bucketCounts[bucketOf(buf, at, bits) + 1]!++;
      written++;
    };
    for (let p = 0; p < PARTITIONS; p++) {
      const fresh = sortedPartition(parts.work, p, parts.counts[p]!);
      let f = 0;
      const oldEnd = base ? base.firstWithTopByte(p + 1) : 0;
      for (let first = base ? base.firstWithTopByte(p) : 0; first < oldEnd; first += MERGE_CHUNK) {
        const old = base!.readEntries(first, Math.min(MERGE_CHUNK, oldEnd - first));
        for (let o = 0; o < old.length; o += ENTRY_SIZE) {
          let c = 1;
          while (f < fresh.length && (c = fresh.compare(old, o, o + DIGEST_LENGTH, f, f + DIGEST_LENGTH)) < 0) { emit(fresh, f); f += ENTRY_SIZE; }
          if (c === 0) f += ENTRY_SIZE; // the one already in the file stays
          emit(old, o);
        }
      }
      for (; f < fresh.length; f += ENTRY_SIZE) emit(fresh, f);
      if (p === PARTITIONS / 2) { w.flush(); await failpoint('lookup:half-written'); }
    }
    const packsOffset = HEADER_SIZE + written * ENTRY_SIZE;
    const basePacks = base?.header.packCount ?? 0;
    const per = Math.floor(OUT_BUFFER / PACK_SIZE);
    for (let first = 0; first < basePacks; first += per) {
      const b = base!.readPacks(first, Math.min(per, basePacks - first));
      w.push(b, 0, b.length);
    }
    const newPacks = fs.openSync(packsName(parts.work), 'r');
    try {
      const b = Buffer.allocUnsafe(per * PACK_SIZE);
      for (let n; (n = fs.readSync(newPacks, b, 0, b.length, null)) > 0;) w.push(b, 0, n);
    } finally {
      fs.closeSync(newPacks);
    }
    const packCount = basePacks + parts.newPacks;
    const names = [...new Set([...(base?.covers ?? []), ...parts.covered])].sort();
    const covers = Buffer.alloc(names.length * DIGEST_LENGTH);
    names.forEach((n, i) => covers.write(n.slice(n.indexOf('/') + 1), i * DIGEST_LENGTH, 'hex'));
    for (let i = 1; i < bucketCounts.length; i++) bucketCounts[i]! += bucketCounts[i - 1]!;
    const fanout = Buffer.from(bucketCounts.buffer);
    w.push(covers, 0, covers.length);
    w.push(fanout, 0, fanout.length);
    w.flush();
    const coversOffset = packsOffset + packCount * PACK_SIZE;
    const fanoutOffset = coversOffset + covers.length;
    const header = encodeHeader({
      fanoutBits: bits, entryCount: written, packCount, coverCount: names.length,
      packsOffset, coversOffset, fanoutOffset, fileLength: fanoutOffset + fanout.length, repositoryId: input.repositoryId,
    }, covers, fanout);
    fs.writeSync(fd, header, 0, HEADER_SIZE, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Removes what builds killed midway left (their process is gone); a live build's files stay. */
function removeLeftovers(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = /^(?:build|lookup)-(\d+)-[0-9a-f]+\.tmp$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
