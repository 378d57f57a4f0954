/**
 * The parts of `vmbkp files` that need no appliance: globs, guestfish quoting and stat
 * output, filesystem names, the TCG choice, generation lists, guest paths, the choice of
 * a filesystem, and putting extracted files in place without following host symlinks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { needsTcg } from '../src/files/environment.js';
import { filesystemName } from '../src/files/filesystems.js';
import { quote, quoteList } from '../src/files/guestfish.js';
import { checkConflicts, countTree, moveInto } from '../src/files/place.js';
import { parseStats } from '../src/files/stat.js';
import { globRegExp, parseGenerationsSpec } from '../src/jobs/files-find.js';
import { guestPath, pickFilesystem } from '../src/jobs/files-session.js';
import { tempDir } from './helpers.js';

it('globs match base names as the shell does', () => {
  assert.ok(globRegExp('*.conf').test('nginx.conf'));
  assert.ok(!globRegExp('*.conf').test('nginx.conf.bak'));
  assert.ok(globRegExp('file?.txt').test('file1.txt'));
  assert.ok(globRegExp('[ab]*').test('beta'));
  assert.ok(!globRegExp('[!ab]*').test('beta'));
  assert.ok(globRegExp('a.(b)+c').test('a.(b)+c'), 'regex characters are literal');
  assert.ok(!globRegExp('a.b').test('axb'));
});

it('guestfish arguments are quoted with its escapes; lists only when safe', () => {
  assert.equal(quote('/a "b"\\c\n'), '"/a \\"b\\"\\\\c\\n"');
  assert.equal(quoteList(['a b', 'näïve €']), `"'a b' 'näïve €'"`);
  assert.equal(quoteList(["it's"]), undefined);
});

it('stat structures parse into type, mode, owner, size and times', () => {
  const text = '[0] = {\n  st_dev: 2049\n  st_mode: 33188\n  st_uid: 1000\n  st_gid: 100\n  st_size: 42\n  st_atime_sec: 10\n  st_atime_nsec: 0\n  st_mtime_sec: 1714979289\n  st_mtime_nsec: 500000000\n}\n'
    + '[1] = {\n  st_dev: 2049\n  st_mode: 41471\n  st_uid: 0\n  st_gid: 0\n  st_size: 11\n  st_mtime_sec: 1\n  st_mtime_nsec: 0\n}\n';
  const [a, b] = parseStats(text);
  assert.deepEqual(a, { type: 'file', mode: 0o644, uid: 1000, gid: 100, size: 42, mtimeMs: 1714979289500, atimeMs: 10000 });
  assert.equal(b!.type, 'symlink');
  assert.equal(b!.mode, 0o777);
  assert.equal(parseStats('st_dev: 1\nst_mode: 16877\nst_size: 4096\n')[0]!.type, 'directory', 'lstatns prints one without braces');
});

it('filesystem names are per drive: partitions sdaN, LVM VG/LV', () => {
  assert.equal(filesystemName('/dev/sda1'), 'sda1');
  assert.equal(filesystemName('/dev/sdc2'), 'sda2');
  assert.equal(filesystemName('/dev/sdb'), 'sda');
  assert.equal(filesystemName('/dev/vg0/root'), 'vg0/root');
});

it('TCG when the CPU has no vmx/svm, or when forced', () => {
  assert.equal(needsTcg({}, 'flags\t\t: fpu vme de pse sse2\n'), true);
  assert.equal(needsTcg({}, 'flags\t\t: fpu vmx sse2\n'), false);
  assert.equal(needsTcg({}, 'flags\t\t: fpu svm sse2\n'), false);
  assert.equal(needsTcg({ VMBKP_GUESTFS_TCG: '1' }, 'flags\t\t: fpu vmx\n'), true);
});

it('generation lists: all, N,M and A..B; others are usage errors', () => {
  assert.deepEqual(parseGenerationsSpec('all'), { kind: 'all' });
  assert.deepEqual(parseGenerationsSpec('3,1,3'), { kind: 'list', numbers: [1, 3] });
  assert.deepEqual(parseGenerationsSpec('2..5'), { kind: 'range', from: 2, to: 5 });
  assert.throws(() => parseGenerationsSpec('5..2'), /backwards/);
  assert.throws(() => parseGenerationsSpec('latest'), /all, N,M/);
});

it('guest paths are absolute and cannot climb above the root', () => {
  assert.equal(guestPath('/etc/nginx/'), '/etc/nginx');
  assert.equal(guestPath('/../../etc/passwd'), '/etc/passwd');
  assert.equal(guestPath('/'), '/');
  assert.throws(() => guestPath('etc/passwd'), /must be absolute/);
});

it('--fs: the named one, the only one, or a usage error listing them', () => {
  const fss = [
    { drive: 0, name: 'sda1', device: '/dev/sda1', type: 'ext4', size: 1, label: null },
    { drive: 0, name: 'vg0/root', device: '/dev/vg0/root', type: 'xfs', size: 1, label: null },
    { drive: 1, name: 'sda1', device: '/dev/sdb1', type: 'vfat', size: 1, label: null },
  ];
  assert.equal(pickFilesystem(fss, 0, '2000', 'vg0/root').device, '/dev/vg0/root');
  assert.equal(pickFilesystem(fss, 1, '2001', undefined).device, '/dev/sdb1');
  assert.throws(() => pickFilesystem(fss, 0, '2000', undefined), { code: 'USAGE', message: '--fs: disk 2000 has several filesystems, give one of: sda1 (ext4), vg0/root (xfs)' });
  assert.throws(() => pickFilesystem(fss, 0, '2000', 'sdb9'), { code: 'USAGE', message: /has no filesystem sdb9; it has: sda1 \(ext4\), vg0\/root \(xfs\)/ });
  assert.throws(() => pickFilesystem(fss, 2, '2002', undefined), { code: 'REPO_UNSUPPORTED' });
});

it('placing files: conflicts refuse before anything moves; a host symlink in the way is replaced, never merged into', async () => {
  const t = await tempDir();
  try {
    const staged = path.join(t.dir, 'staged/etc');
    const target = path.join(t.dir, 'target');
    const outside = path.join(t.dir, 'outside');
    await fs.mkdir(path.join(staged, 'sub'), { recursive: true });
    await fs.mkdir(target);
    await fs.mkdir(outside);
    await fs.writeFile(path.join(staged, 'a'), 'new a');
    await fs.writeFile(path.join(staged, 'sub/b'), 'new b');
    await fs.symlink('/etc/passwd', path.join(staged, 'link'));
    assert.equal(spawnSync('mkfifo', [path.join(staged, 'fifo')]).status, 0);
    const counts = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    assert.deepEqual(await countTree(staged, counts), [path.join(staged, 'fifo')], 'a FIFO is left out');
    assert.deepEqual(counts, { files: 2, directories: 2, symlinks: 1, bytes: 10 });

    await fs.mkdir(path.join(target, 'etc'));
    await fs.writeFile(path.join(target, 'etc/a'), 'old a');
    await fs.symlink(outside, path.join(target, 'etc/sub'));
    await assert.rejects(checkConflicts(staged, path.join(target, 'etc'), false), { code: 'ALREADY_EXISTS', message: /etc\/a exists: not overwritten/ });
    assert.equal(await fs.readFile(path.join(target, 'etc/a'), 'utf8'), 'old a');
    await checkConflicts(staged, path.join(target, 'etc'), true);
    await moveInto(staged, path.join(target, 'etc'));
    assert.equal(await fs.readFile(path.join(target, 'etc/a'), 'utf8'), 'new a');
    assert.ok((await fs.lstat(path.join(target, 'etc/sub'))).isDirectory(), 'the symlink was replaced by the directory');
    assert.deepEqual(await fs.readdir(outside), [], 'nothing written through the host symlink');
    assert.equal(await fs.readlink(path.join(target, 'etc/link')), '/etc/passwd');
  } finally {
    await t.cleanup();
  }
});
