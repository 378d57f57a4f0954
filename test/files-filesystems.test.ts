/**
 * File-level restore across filesystems (issue 18), through the real CLI: disk images holding
 * GPT + ext4, MBR + LVM + XFS, MBR + NTFS and MBR + FAT32 (test/fs-images.ts) are backed up
 * twice (files changed, added and removed between the generations), then `vmbkp files` lists
 * each disk's filesystem by name and type, lists a directory, finds what changed across both
 * generations and extracts trees from both, whose files' sha256 equal the originals; symlinks
 * pointing outside come back as links, not followed.
 *
 * Every `vmbkp files` command starts one libguestfs appliance (15–25 s under TCG here), and the
 * whole suite shares a 30-minute CI budget on 2 cores, so each layout gets three commands: list,
 * find across both generations (which checks every file's sha256 in both), and get of the older
 * generation (which checks what lands on the host). GPT + ext4 is built here too (the self-check
 * reads it) but its CLI checks — ls, get of both generations, tar, mount, errors — are in
 * test/files.test.ts, on a 2 GiB disk.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BuiltImage, type Generation, LAYOUTS, type Layout, TREE, type TreeEntry, buildImage } from './fs-images.js';
import { type RunResult, sha256File, tempDir, vmbkp } from './helpers.js';

/** An appliance start under TCG on a busy 2-core machine can take a minute: a limit, not a timing assertion. */
const FILES_TIMEOUT_MS = 600_000;

interface ListJson { set: string; generation: number; filesystems: { disk: string; name: string; device: string; type: string; size: number; label: string | null }[]; bytesRead: number }
interface LsEntry { name: string; type: string; mode: number; uid: number; gid: number; size: number; mtime: string; target?: string }
interface LsJson { set: string; generation: number; disk: string; fs: string; path: string; entries: LsEntry[]; bytesRead: number }
interface FindVersion { generation: number; type: string; size: number; mtime: string; sha256?: string }
interface FindJson { set: string; disk: string; fs: string; generations: number[]; matches: { path: string; versions: FindVersion[]; changed: boolean }[]; bytesRead: number }
interface GetJson { set: string; generation: number; disk: string; fs: string; to: string; files: number; directories: number; symlinks: number; bytes: number; bytesRead: number }

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

/** What an extracted tree holds: relative path → file digest, symlink target or directory. */
async function extracted(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isSymbolicLink()) out.set(rel, `symlink ${await fs.readlink(p)}`);
      else if (e.isDirectory()) { out.set(rel, 'directory'); await walk(p); }
      else if (e.isFile()) out.set(rel, `file ${await sha256File(p)}`);
      else out.set(rel, 'other');
    }
  };
  await walk(dir);
  return out;
}

function expectedTree(entries: readonly TreeEntry[], roots: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of entries) {
    // `get /etc` → DIR/etc/…: the path itself, relative to the root, when under one of the roots.
    if (!roots.some((r) => e.path === r || e.path.startsWith(`${r}/`))) continue;
    const rel = e.path.slice(1);
    out.set(rel, e.type === 'file' ? `file ${e.sha256}` : e.type === 'symlink' ? `symlink ${e.target}` : 'directory');
  }
  return out;
}

describe('vmbkp files on GPT + ext4, MBR + LVM + XFS, NTFS and FAT32, two generations each', () => {
  let dir: string;
  let cleanup: (() => Promise<void>) | undefined;
  let repo: string;
  const images = new Map<string, BuiltImage>();
  const layouts = LAYOUTS.filter((l): l is Layout => l !== 'gpt-ext4');
  const image = (layout: Layout, g: Generation): BuiltImage => images.get(`${layout}-${g}`)!;
  const files = (args: string[]): Promise<RunResult> => vmbkp(['files', ...args], { timeoutMs: FILES_TIMEOUT_MS });

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-files-fs-'));
    repo = path.join(dir, 'repo');
    ok(await vmbkp(['init', '--repo', repo]), 'init');
    for (const layout of layouts) {
      for (const g of [1, 2] as const) {
        const img = await buildImage(layout, g, dir);
        images.set(`${layout}-${g}`, img);
        ok(await vmbkp(['backup', '--repo', repo, '--set', layout, `sda=file:${img.path}`]), `backup ${layout} generation ${g}`);
      }
    }
  });
  after(() => cleanup?.());

  for (const layout of layouts) {
    describe(layout, () => {
      const common = (): string[] => ['--repo', repo, '--set', layout];

      it('files list names the filesystem and its type', async () => {
        const info = image(layout, 2).info;
        const list = JSON.parse(ok(await files(['list', ...common(), '--json']), 'files list')) as ListJson;
        assert.equal(list.set, layout);
        assert.equal(list.generation, 2, 'the latest generation by default');
        assert.deepEqual(list.filesystems.map((f) => [f.disk, f.name, f.type, f.label]), [['sda', info.fsName, info.type, info.label]]);
        assert.ok(list.filesystems[0]!.size > 0 && list.filesystems[0]!.size < info.diskBytes, `size ${list.filesystems[0]!.size}`);
        assert.ok(list.bytesRead > 0, 'bytes read from the repository are counted');
      });

      it('files find across both generations reports what changed, with each version\'s sha256', async () => {
        const find = JSON.parse(ok(await files(['find', ...common(), '--generations', 'all', '--json']), 'files find')) as FindJson;
        assert.deepEqual(find.generations, [1, 2]);
        const byPath = new Map(find.matches.map((m) => [m.path, m]));
        const version = (g: Generation, p: string): TreeEntry | undefined => image(layout, g).entries.find((e) => e.path === p);
        for (const p of [TREE.changed, TREE.removed, TREE.added, TREE.blob, TREE.spaced, TREE.unicode]) {
          const m = byPath.get(p);
          assert.ok(m, `${p} is found`);
          const expected = ([1, 2] as const).flatMap((g) => {
            const e = version(g, p);
            return e?.type === 'file' ? [{ generation: g, sha256: e.sha256, size: e.content.length }] : [];
          });
          assert.deepEqual(m.versions.map((v) => ({ generation: v.generation, sha256: v.sha256, size: v.size })), expected, `${p}: versions`);
          const changed = expected.length !== 2 || expected[0]!.sha256 !== expected[1]!.sha256;
          assert.equal(m.changed, changed, `${p}: changed`);
        }
        assert.equal(byPath.get(TREE.changed)?.changed, true, 'the file rewritten in place (same size) is reported changed');
        if (image(layout, 1).info.symlinks) {
          const link = byPath.get(TREE.absoluteLink);
          assert.deepEqual(link?.versions.map((v) => [v.generation, v.type]), [[1, 'symlink'], [2, 'symlink']]);
          assert.equal(link?.changed, false);
        }
      });

      for (const g of [1] as Generation[]) {
        it(`files get extracts trees of generation ${g}: sha256 equal to the originals, symlinks kept as links`, async () => {
          const img = image(layout, g);
          const roots = ['/etc', '/docs', '/data', TREE.emptyDir, ...(g === 2 ? [TREE.added] : [])];
          const to = path.join(dir, `get-${layout}-${g}`);
          const r = await files(['get', ...common(), '--generation', String(g), ...roots, '--to', to, '--json']);
          const get = JSON.parse(ok(r, 'files get')) as GetJson;
          const want = expectedTree(img.entries, roots);
          assert.deepEqual(await extracted(to), want);
          const wantFiles = img.entries.filter((e) => e.type === 'file' && want.has(e.path.slice(1)));
          assert.equal(get.files, wantFiles.length);
          assert.equal(get.symlinks, img.info.symlinks ? 2 : 0);
          assert.equal(get.bytes, wantFiles.reduce((n, e) => n + (e.type === 'file' ? e.content.length : 0), 0));
          assert.ok(get.bytesRead > 0, 'bytes read from the repository are counted');
          if (img.info.symlinks) {
            // Kept as link text: the host's /etc/passwd is neither read nor copied.
            assert.equal(await fs.readlink(path.join(to, TREE.absoluteLink)), '/etc/passwd');
            assert.ok((await fs.lstat(path.join(to, TREE.absoluteLink))).isSymbolicLink());
          }
          if (img.info.modes) {
            assert.equal((await fs.stat(path.join(to, TREE.changed))).mode & 0o7777, 0o644, 'file mode kept');
            assert.equal((await fs.stat(path.join(to, 'docs'))).mode & 0o7777, 0o755, 'directory mode kept');
          }
          if (layout === 'mbr-ntfs') {
            // The NTFS builder keeps the tree's mtimes (ntfs-3g with preserved times).
            const e = img.entries.find((x) => x.path === TREE.changed);
            assert.ok(e?.type === 'file');
            assert.equal((await fs.stat(path.join(to, TREE.changed))).mtime.getTime(), e.mtime.getTime(), 'mtime kept');
          }
        });
      }
    });
  }
});
