/**
 * Real disk images holding real filesystems, for the file-level restore tests (issue 18):
 * GPT + ext4, MBR + LVM + XFS, MBR + NTFS and MBR + FAT32, each in two generations (files
 * changed, added and removed between them). They are built in seconds by the filesystems' own
 * tools working on image files (sfdisk, mke2fs -d, mkfs.xfs -p, mkfs.fat + mcopy, mkntfs +
 * ntfs-3g): no loop device, no appliance. Everything goes under the caller's temp directory.
 *
 * The tree has names with spaces and non-ASCII characters, an empty directory and, where the
 * filesystem has symlinks, two that point outside it (`/etc/passwd`, `../../..`): a restore
 * must recreate them as links, never follow them.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
/** Partitions start at 1 MiB, as fdisk and parted place them. */
const PART_START = MiB;

export type Layout = 'gpt-ext4' | 'mbr-lvm-xfs' | 'mbr-ntfs' | 'mbr-fat32';
export const LAYOUTS: readonly Layout[] = ['gpt-ext4', 'mbr-lvm-xfs', 'mbr-ntfs', 'mbr-fat32'];
export type Generation = 1 | 2;

/** What `vmbkp files list` (and libguestfs's list-filesystems) should find on a layout's disk. */
export interface LayoutInfo {
  /** The contract's filesystem name: `sda1` for a partition, `VG/LV` for a logical volume. */
  fsName: string;
  /** The device in the appliance, as libguestfs names it when the image is its first disk. */
  device: string;
  type: string;
  label: string;
  /** Whether the filesystem stores symlinks (FAT does not: the tree leaves them out). */
  symlinks: boolean;
  /** Whether it stores Unix modes (NTFS through ntfs-3g and FAT show fixed ones). */
  modes: boolean;
  /** Entries the filesystem's tools add to every volume, not part of the tree. */
  extra: readonly string[];
  diskBytes: number;
}

export const LAYOUT_INFO: Readonly<Record<Layout, LayoutInfo>> = {
  'gpt-ext4': { fsName: 'sda1', device: '/dev/sda1', type: 'ext4', label: 'root', symlinks: true, modes: true, extra: ['/lost+found'], diskBytes: 64 * MiB },
  'mbr-lvm-xfs': { fsName: 'vg0/root', device: '/dev/vg0/root', type: 'xfs', label: 'root', symlinks: true, modes: true, extra: [], diskBytes: 80 * MiB },
  'mbr-ntfs': { fsName: 'sda1', device: '/dev/sda1', type: 'ntfs', label: 'data', symlinks: true, modes: false, extra: [], diskBytes: 64 * MiB },
  'mbr-fat32': { fsName: 'sda1', device: '/dev/sda1', type: 'vfat', label: 'DATA', symlinks: false, modes: false, extra: [], diskBytes: 64 * MiB },
};

export interface TreeFile { type: 'file'; path: string; content: Buffer; sha256: string; mtime: Date }
export interface TreeDir { type: 'directory'; path: string }
export interface TreeLink { type: 'symlink'; path: string; target: string }
export type TreeEntry = TreeFile | TreeDir | TreeLink;

/** Paths of the tree that matter to the tests, by what happens to them between generations. */
export const TREE = {
  changed: '/etc/app.conf',
  removed: '/docs/removed.txt',
  added: '/added.txt',
  spaced: '/docs/read me.txt',
  unicode: '/docs/café ünï 日本.txt',
  blob: '/data/blob.bin',
  absoluteLink: '/etc/passwd-link',
  upLink: '/docs/up',
  emptyDir: '/empty',
} as const;

/** Deterministic bytes: SHA-256 in counter mode over a seed. */
export function pseudoRandom(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0, off = 0; off < length; i++, off += 32) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  }
  return out;
}

function file(p: string, content: Buffer | string, mtime: string): TreeFile {
  const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { type: 'file', path: p, content: buf, sha256: createHash('sha256').update(buf).digest('hex'), mtime: new Date(mtime) };
}

/** The tree of a generation: the second changes /etc/app.conf (same size), removes one file and adds one. */
export function treeOf(generation: Generation, symlinks: boolean): TreeEntry[] {
  const t1 = '2026-01-02T03:04:06Z';
  const t2 = '2026-02-03T04:05:06Z';
  const entries: TreeEntry[] = [
    { type: 'directory', path: '/etc' },
    { type: 'directory', path: '/docs' },
    { type: 'directory', path: '/data' },
    { type: 'directory', path: TREE.emptyDir },
    generation === 1 ? file(TREE.changed, 'listen = 8080\nworkers = 4\n', t1) : file(TREE.changed, 'listen = 8443\nworkers = 4\n', t2),
    file(TREE.spaced, 'Notes kept in a file whose name has spaces.\n', t1),
    file(TREE.unicode, 'Ein Lebenslauf, naïve, 日本語のテキスト.\n', t1),
    file(TREE.blob, pseudoRandom('blob', 256 * 1024), t1),
  ];
  if (generation === 1) entries.push(file(TREE.removed, 'gone in the second generation\n', t1));
  else entries.push(file(TREE.added, 'new in the second generation\n', t2));
  if (symlinks) {
    entries.push({ type: 'symlink', path: TREE.absoluteLink, target: '/etc/passwd' });
    entries.push({ type: 'symlink', path: TREE.upLink, target: '../../..' });
  }
  return entries;
}

export interface BuiltImage {
  layout: Layout;
  generation: Generation;
  path: string;
  info: LayoutInfo;
  entries: TreeEntry[];
}

/** Builds `<dir>/<layout>-<generation>.img`; `dir` is a temp directory of the caller's. */
export async function buildImage(layout: Layout, generation: Generation, dir: string): Promise<BuiltImage> {
  const info = LAYOUT_INFO[layout];
  const entries = treeOf(generation, info.symlinks);
  const work = await fs.mkdtemp(path.join(dir, `${layout}-${generation}-`));
  const stage = path.join(work, 'tree');
  await stageTree(stage, entries);
  const img = path.join(dir, `${layout}-${generation}.img`);
  await fs.rm(img, { force: true });
  await fs.writeFile(img, '');
  await fs.truncate(img, info.diskBytes);
  switch (layout) {
    case 'gpt-ext4': await buildExt4(img, info, stage); break;
    case 'mbr-lvm-xfs': await buildLvmXfs(img, info, entries, work); break;
    case 'mbr-ntfs': await buildNtfs(img, info, stage, work); break;
    case 'mbr-fat32': await buildFat32(img, info, stage); break;
  }
  await fs.rm(work, { recursive: true, force: true });
  return { layout, generation, path: img, info, entries };
}

async function stageTree(stage: string, entries: readonly TreeEntry[]): Promise<void> {
  await fs.mkdir(stage, { recursive: true });
  for (const e of entries) {
    const p = path.join(stage, e.path);
    await fs.mkdir(path.dirname(p), { recursive: true });
    if (e.type === 'directory') await fs.mkdir(p, { recursive: true, mode: 0o755 });
    else if (e.type === 'symlink') await fs.symlink(e.target, p);
    else {
      await fs.writeFile(p, e.content, { mode: 0o644 });
      await fs.chmod(p, 0o644);
      await fs.utimes(p, e.mtime, e.mtime);
    }
  }
  for (const e of entries) if (e.type === 'directory') await fs.chmod(path.join(stage, e.path), 0o755);
}

/** The filesystem tools live in /usr/sbin, which a non-login PATH may lack. */
const TOOL_ENV = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin`, LC_ALL: 'C.UTF-8', MTOOLS_SKIP_CHECK: '1' };

async function tool(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<string> {
  const child = execFileP(cmd, args, { env: { ...TOOL_ENV, ...env }, maxBuffer: 16 * MiB });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    return (await child).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`fs-images: ${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

const sectors = (bytes: number): number => bytes / 512;

async function buildExt4(img: string, info: LayoutInfo, stage: string): Promise<void> {
  await partitionedExt4(img, stage, info.diskBytes, info.label);
}

/**
 * A GPT disk image of `diskBytes` with one ext4 partition (from 1 MiB) holding `stage`'s
 * tree: the benchmark's disk too (bench/files.mjs).
 */
export async function ext4Image(img: string, stage: string, diskBytes: number, label: string): Promise<void> {
  await fs.rm(img, { force: true });
  await fs.writeFile(img, '');
  await fs.truncate(img, diskBytes);
  await partitionedExt4(img, stage, diskBytes, label);
}

async function partitionedExt4(img: string, stage: string, diskBytes: number, label: string): Promise<void> {
  // GPT keeps a backup header in the disk's last 33 sectors: the partition ends 1 MiB short.
  const partBytes = diskBytes - 2 * MiB;
  await tool('sfdisk', ['-q', img], {}, `label: gpt\nlabel-id: 6E0D1A5E-1C5B-4C46-9E66-0A6B7A9E0001\nstart=${sectors(PART_START)}, size=${sectors(partBytes)}, type=L, uuid=6E0D1A5E-1C5B-4C46-9E66-0A6B7A9E0002, name=root\n`);
  // A fixed time, UUID and hash seed keep the filesystem's own metadata the same on every build.
  await tool('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-L', label, '-U', '2f0c4a36-9d1e-4d55-8e54-3c8a4b1e0a01',
    '-E', `offset=${PART_START},root_owner=0:0,hash_seed=2f0c4a36-9d1e-4d55-8e54-3c8a4b1e0a02`, '-d', stage, img, String(partBytes / 4096)],
  { E2FSPROGS_FAKE_TIME: '1767323046' });
}

async function buildFat32(img: string, info: LayoutInfo, stage: string): Promise<void> {
  const partBytes = info.diskBytes - PART_START;
  await tool('sfdisk', ['-q', img], {}, `label: dos\nlabel-id: 0x6e0d1a5e\nstart=${sectors(PART_START)}, type=c\n`);
  // 512-byte clusters: FAT32 needs 65,525 clusters at least, which then fit in 64 MiB.
  await tool('mkfs.fat', ['-F', '32', '-s', '1', '-n', info.label, '-i', '6E0D1A5E', '--offset', String(sectors(PART_START)), img, String(partBytes / 1024)]);
  const top = (await fs.readdir(stage)).map((n) => path.join(stage, n));
  await tool('mcopy', ['-s', '-p', '-m', '-i', `${img}@@${PART_START}`, ...top, '::/']);
}

async function buildNtfs(img: string, info: LayoutInfo, stage: string, work: string): Promise<void> {
  const partBytes = info.diskBytes - PART_START;
  await tool('sfdisk', ['-q', img], {}, `label: dos\nlabel-id: 0x6e0d1a5f\nstart=${sectors(PART_START)}, type=7\n`);
  // mkntfs and ntfs-3g work on a whole device: the volume is made in a file of its own,
  // filled through ntfs-3g (FUSE, as root), then copied into the partition.
  const part = path.join(work, 'ntfs.part');
  await fs.writeFile(part, '');
  await fs.truncate(part, partBytes);
  await tool('mkntfs', ['-q', '-F', '-Q', '-p', String(sectors(PART_START)), '-H', '64', '-S', '32', '-L', info.label, part]);
  const mnt = path.join(work, 'mnt');
  await fs.mkdir(mnt);
  await withNtfs3g(part, mnt, () => fs.cp(stage, mnt, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true }));
  await copySparse(part, img, PART_START);
}

/**
 * Runs `fn` while `part` is mounted at `mnt` by ntfs-3g in the foreground, then unmounts and
 * waits for ntfs-3g to exit: on a file (not a block device) the kernel's unmount does not
 * wait for the FUSE daemon to flush, its exit does.
 */
async function withNtfs3g(part: string, mnt: string, fn: () => Promise<void>): Promise<void> {
  const child: ChildProcess = spawn('ntfs-3g', ['-o', 'no_detach', part, mnt], { env: TOOL_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => { done = true; });
  while (!(await isMountPoint(mnt))) {
    if (done) throw new Error(`fs-images: ntfs-3g ${part} ${mnt} failed: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    await fn();
  } finally {
    await tool('umount', [mnt]);
    const code = await exited;
    if (code !== 0) throw new Error(`fs-images: ntfs-3g ${part} exited with ${code}: ${stderr.trim()}`);
  }
}

async function isMountPoint(dir: string): Promise<boolean> {
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

/** Copies `src` into `dst` at `offset`, leaving zero blocks as holes. */
async function copySparse(src: string, dst: string, offset: number): Promise<void> {
  const input = await fs.open(src, 'r');
  const output = await fs.open(dst, 'r+');
  try {
    const buf = Buffer.alloc(MiB);
    for (let pos = 0; ; pos += MiB) {
      const { bytesRead } = await input.read(buf, 0, MiB, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      if (chunk.some((b) => b !== 0)) await output.write(chunk, 0, bytesRead, offset + pos);
    }
  } finally {
    await input.close();
    await output.close();
  }
}

// -----------------------------------------------------------------------------------------------
// MBR + LVM + XFS. LVM's tools only work on block devices, so its on-disk format (a PV label,
// one metadata area, one VG with one linear LV) is written here, checked against what lvm2
// 2.03 itself wrote in a libguestfs appliance; the XFS volume is made by mkfs.xfs in a file.

const LVM_EXTENT = 4 * MiB;
/** The PV's metadata area (after the label sector) and where its first extent starts, as pvcreate's defaults. */
const LVM_MDA_START = 4096;
const LVM_MDA_SIZE = MiB - LVM_MDA_START;
const LVM_PE_START = MiB;
const LVM_LV_EXTENTS = 16;
const LVM_CRC_INIT = 0xf597a6cf;
const LVM_MDA_MAGIC = Buffer.from(' LVM2 x[5A%r0N*>', 'latin1');

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** lvm2's calc_crc: the CRC-32 polynomial, LVM's initial value, no final inversion. */
export function lvmCrc(buf: Buffer): number {
  let c = LVM_CRC_INIT;
  for (const b of buf) c = (CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)) >>> 0;
  return c >>> 0;
}

/** An LVM id: 32 characters, shown in groups of 6-4-4-4-4-4-6. */
const dashed = (id: string): string => [id.slice(0, 6), id.slice(6, 10), id.slice(10, 14), id.slice(14, 18), id.slice(18, 22), id.slice(22, 26), id.slice(26)].join('-');
const PV_ID = 'vmbkpP0testPV0000000000000000001';
const VG_ID = 'vmbkpV0testVG0000000000000000001';
const LV_ID = 'vmbkpL0testLV0000000000000000001';

function lvmMetadata(pvSectors: number): Buffer {
  const peCount = Math.floor((pvSectors * 512 - LVM_PE_START) / LVM_EXTENT);
  const text = `vg0 {
id = "${dashed(VG_ID)}"
seqno = 1
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
flags = []
extent_size = ${LVM_EXTENT / 512}
max_lv = 0
max_pv = 0
metadata_copies = 0

physical_volumes {

pv0 {
id = "${dashed(PV_ID)}"
device = "/dev/sda1"

status = ["ALLOCATABLE"]
flags = []
dev_size = ${pvSectors}
pe_start = ${LVM_PE_START / 512}
pe_count = ${peCount}
}
}

logical_volumes {

root {
id = "${dashed(LV_ID)}"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
creation_time = 1767323046
creation_host = "vmbkp-test"
segment_count = 1

segment1 {
start_extent = 0
extent_count = ${LVM_LV_EXTENTS}

type = "striped"
stripe_count = 1

stripes = [
"pv0", 0
]
}
}
}

}
# Written by vmbkp's test/fs-images.ts

contents = "Text Format Volume Group"
version = 1

description = ""

creation_host = "vmbkp-test"
creation_time = 1767323046
`;
  // The stored size counts the terminating NUL, as lvm2 writes it.
  return Buffer.concat([Buffer.from(text), Buffer.alloc(1)]);
}

/** The first MiB of the PV: label in sector 1, metadata area header and text from 4 KiB. */
function lvmPvHeader(pvSectors: number): Buffer {
  const out = Buffer.alloc(LVM_PE_START);
  const label = out.subarray(512, 1024);
  label.write('LABELONE', 0, 'latin1');
  label.writeBigUInt64LE(1n, 8); // the sector this label is in
  label.writeUInt32LE(32, 20); // pv_header offset within the sector
  label.write('LVM2 001', 24, 'latin1');
  const pv = label.subarray(32);
  pv.write(PV_ID, 0, 'latin1');
  pv.writeBigUInt64LE(BigInt(pvSectors * 512), 32);
  let o = 40;
  const locn = (offset: number, size: number): void => { pv.writeBigUInt64LE(BigInt(offset), o); pv.writeBigUInt64LE(BigInt(size), o + 8); o += 16; };
  locn(LVM_PE_START, 0); locn(0, 0); // data area (size 0: to the end), end of list
  locn(LVM_MDA_START, LVM_MDA_SIZE); locn(0, 0); // metadata area, end of list
  pv.writeUInt32LE(2, o); pv.writeUInt32LE(1, o + 4); o += 8; // extension: version 2, flags: PV in use
  locn(0, 0); // no bootloader area
  label.writeUInt32LE(lvmCrc(label.subarray(20)), 16);

  const text = lvmMetadata(pvSectors);
  const mda = out.subarray(LVM_MDA_START, LVM_MDA_START + 512);
  LVM_MDA_MAGIC.copy(mda, 4);
  mda.writeUInt32LE(1, 20);
  mda.writeBigUInt64LE(BigInt(LVM_MDA_START), 24);
  mda.writeBigUInt64LE(BigInt(LVM_MDA_SIZE), 32);
  mda.writeBigUInt64LE(512n, 40); // the text follows the header
  mda.writeBigUInt64LE(BigInt(text.length), 48);
  mda.writeUInt32LE(lvmCrc(text), 56);
  mda.writeUInt32LE(lvmCrc(mda.subarray(4)), 0);
  text.copy(out, LVM_MDA_START + 512);
  return out;
}

async function buildLvmXfs(img: string, info: LayoutInfo, entries: readonly TreeEntry[], work: string): Promise<void> {
  const partBytes = info.diskBytes - PART_START;
  await tool('sfdisk', ['-q', img], {}, `label: dos\nlabel-id: 0x6e0d1a60\nstart=${sectors(PART_START)}, type=8e\n`);
  const handle = await fs.open(img, 'r+');
  try {
    await handle.write(lvmPvHeader(sectors(partBytes)), 0, LVM_PE_START, PART_START);
  } finally {
    await handle.close();
  }
  const xfs = path.join(work, 'xfs.lv');
  await fs.writeFile(xfs, '');
  await fs.truncate(xfs, LVM_LV_EXTENTS * LVM_EXTENT);
  await makeXfs(xfs, info, entries, work);
  await copySparse(xfs, img, PART_START + LVM_PE_START);
}

/**
 * mkfs.xfs fills the volume from a prototype file, whose names cannot hold spaces: such names
 * go in with `_`, and xfs_db then writes the real name into the (short-form) directory entry,
 * recomputing the inode's CRC.
 */
async function makeXfs(xfs: string, info: LayoutInfo, entries: readonly TreeEntry[], work: string): Promise<void> {
  const proto: string[] = ['/dev/null', '0 0', 'd--755 0 0'];
  const renames = new Map<string, { from: string; to: string }[]>();
  const sources: { src: string; content: Buffer }[] = [];
  const children = (dir: string): TreeEntry[] => entries.filter((e) => path.posix.dirname(e.path) === dir);
  const walk = (dir: string): void => {
    for (const e of children(dir)) {
      const base = path.posix.basename(e.path);
      const protoName = base.replaceAll(' ', '_');
      if (protoName !== base) {
        if (e.type === 'directory') throw new Error(`fs-images: an XFS directory name cannot hold a space (${e.path})`);
        const list = renames.get(dir) ?? [];
        list.push({ from: protoName, to: base });
        renames.set(dir, list);
      }
      if (e.type === 'directory') {
        proto.push(`${protoName} d--755 0 0`);
        walk(e.path);
        proto.push('$');
      } else if (e.type === 'symlink') proto.push(`${protoName} l--777 0 0 ${e.target}`);
      else {
        // The prototype's source path cannot hold spaces either: a flat copy with plain names.
        const src = path.join(work, `xfs-src-${sources.length}`);
        sources.push({ src, content: e.content });
        proto.push(`${protoName} ---644 0 0 ${src}`);
      }
    }
  };
  walk('/');
  for (const { src, content } of sources) await fs.writeFile(src, content);
  proto.push('$', '');
  const protoFile = path.join(work, 'xfs.proto');
  await fs.writeFile(protoFile, proto.join('\n'));
  // Below 300 MB mkfs.xfs asks for xfstests' variables; a small volume keeps the test's disk small.
  await tool('mkfs.xfs', ['-q', '-f', '-L', info.label, '-m', 'uuid=2f0c4a36-9d1e-4d55-8e54-3c8a4b1e0a03', '-p', protoFile, xfs],
    { TEST_DIR: work, TEST_DEV: xfs, QA_CHECK_FS: 'xfs' });
  for (const [dir, list] of renames) {
    const printed = await tool('xfs_db', ['-r', '-c', `path ${dir}`, '-c', 'print u3.sfdir3.list', xfs]);
    const cmds: string[] = ['-c', `path ${dir}`];
    for (const { from, to } of list) {
      const shown = xfsDbString(from);
      const m = /list\[(\d+)\]\.name = "(.*)"/g;
      let index: string | undefined;
      for (const hit of printed.matchAll(m)) if (hit[2] === shown) index = hit[1];
      if (index === undefined) throw new Error(`fs-images: ${from} is not a short-form entry of ${dir} in the XFS volume`);
      cmds.push('-c', `write u3.sfdir3.list[${index}].name "${to}"`);
    }
    await tool('xfs_db', ['-x', ...cmds, xfs]);
  }
}

/** A name as xfs_db prints it: bytes outside printable ASCII as octal escapes. */
function xfsDbString(name: string): string {
  let out = '';
  for (const b of Buffer.from(name)) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  return out;
}

/**
 * libguestfs's environment here: without vmx/svm in the CPU flags, /dev/kvm (if any) is a
 * nested module that QEMU aborts on and libguestfs does not fall back from, so the appliance
 * runs under TCG (as `vmbkp files` does; VMBKP_GUESTFS_TCG=1 forces it).
 */
export function guestfsEnv(): NodeJS.ProcessEnv {
  let cpuinfo = '';
  try { cpuinfo = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux: let libguestfs choose */ }
  const hw = /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
  if (hw && process.env['VMBKP_GUESTFS_TCG'] !== '1') return {};
  return { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };
}
