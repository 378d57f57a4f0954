/**
 * vmbkp files against real libguestfs: a GPT disk image with an ext4 filesystem (built in
 * a second with sfdisk and `mke2fs -d`, no loop mount), backed up twice from a file source
 * with files changed between, then list, ls, find across both generations, get (to a
 * directory and as a tar stream), mount, SIGINT during a get, and the one-line errors,
 * each through the real CLI.
 *
 * Every CLI run that reaches the filesystem starts a libguestfs appliance (15–25 s under
 * TCG): cases that can share a run share it, and the disk is the same 2 GiB sparse image
 * for all, so that bytesRead of a small get is measured against a big disk.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, type RunResult, oneLine, run, sha256File, startVmbkp, tempDir, vmbkp } from './helpers.js';

const GiB = 1024 ** 3;
const DISK_SIZE = 2 * GiB;
const BIG = 96 * 1024 * 1024;
const skip = spawnSync('guestfish', ['--version']).status !== 0 || spawnSync('mke2fs', ['-V']).status !== 0 ? 'needs libguestfs-tools and e2fsprogs' : false;

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The files of the filesystem, generation by generation (relative path → content). */
const SPACE = 'docs/space name.txt';
const UNICODE = 'docs/näïve ünïcode €.txt';
const gen1: Record<string, string> = {
  'etc/nginx/nginx.conf': 'worker_processes 1;\n',
  'etc/nginx/mime.types': 'types { text/html html; }\n',
  'etc/hosts': '127.0.0.1 localhost\n',
  [SPACE]: 'a name with spaces\n',
  [UNICODE]: 'non-ASCII name\n',
};
const gen2: Record<string, string> = { ...gen1, 'etc/nginx/nginx.conf': 'worker_processes 4;\n', 'etc/nginx/new.conf': 'server {}\n' };
delete gen2['etc/hosts'];
/** Kept on every file so that get can be checked for times. */
const MTIME = new Date('2024-05-06T07:08:09Z');

/** A 2 GiB sparse image: GPT, one partition, ext4 labelled root holding `files`, symlinks out, and a big random file. */
async function buildImage(image: string, tree: string, files: Record<string, string>, big: Buffer): Promise<number> {
  await fs.rm(tree, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
    await fs.writeFile(path.join(tree, rel), content, { mode: 0o640 });
    await fs.utimes(path.join(tree, rel), MTIME, MTIME);
  }
  await fs.mkdir(path.join(tree, 'big'));
  await fs.writeFile(path.join(tree, 'big/random.bin'), big);
  await fs.symlink('/etc/passwd', path.join(tree, 'docs/abs-link'));
  await fs.symlink('../../../../../../tmp/escaped-by-vmbkp', path.join(tree, 'docs/rel-link'));
  await fs.rm(image, { force: true });
  await fs.writeFile(image, '');
  await fs.truncate(image, DISK_SIZE);
  const sf = spawnSync('sfdisk', ['-q', image], { input: 'label: gpt\nstart=2048, type=L\n' });
  assert.equal(sf.status, 0, `sfdisk: ${sf.stderr}`);
  const table = JSON.parse(spawnSync('sfdisk', ['--json', image]).stdout.toString()) as { partitiontable: { partitions: { start: number; size: number }[] } };
  const part = table.partitiontable.partitions[0]!;
  const mk = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'root', '-d', tree, '-E', `offset=${part.start * 512}`, image, `${part.size / 2}k`]);
  assert.equal(mk.status, 0, `mke2fs: ${mk.stderr}`);
  return part.size * 512;
}

// Two at a time: an appliance under TCG keeps one core busy, and the cases are independent.
describe('files: file-level restore with libguestfs', { skip, concurrency: 2 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let repo: string;
  let base: string[];
  let big: Buffer;
  let partitionSize: number;

  before(async () => {
    tmp = await tempDir('vmbkp-files-');
    repo = path.join(tmp.dir, 'repo');
    base = ['--repo', repo, '--set', 'web'];
    big = randomBytes(BIG);
    const image = path.join(tmp.dir, 'disk.img');
    ok(await vmbkp(['init', '--repo', repo]), 'init');
    await buildImage(image, path.join(tmp.dir, 'tree'), gen1, big);
    ok(await vmbkp(['backup', '--repo', repo, '--set', 'web', `2000=file:${image}`]), 'backup 1');
    partitionSize = await buildImage(image, path.join(tmp.dir, 'tree'), gen2, big);
    ok(await vmbkp(['backup', '--repo', repo, '--set', 'web', `2000=file:${image}`]), 'backup 2');
  });
  after(async () => { await tmp?.cleanup(); });

  it('list: the ext4 partition with its name, type, size and label', async () => {
    const r = await vmbkp(['files', 'list', ...base, '--json']);
    ok(r, 'files list');
    const j = JSON.parse(r.stdout) as { set: string; generation: number; filesystems: { disk: string; name: string; device: string; type: string; size: number; label: string | null }[]; bytesRead: number };
    assert.equal(j.set, 'web');
    assert.equal(j.generation, 2);
    assert.equal(j.filesystems.length, 1);
    const f = j.filesystems[0]!;
    assert.deepEqual({ disk: f.disk, name: f.name, device: f.device, type: f.type, label: f.label }, { disk: '2000', name: 'sda1', device: '/dev/sda1', type: 'ext4', label: 'root' });
    assert.equal(f.size, partitionSize);
    assert.ok(j.bytesRead > 0 && j.bytesRead < 0.05 * DISK_SIZE, `bytesRead ${j.bytesRead}`);
  });

  it('ls: long entries of a directory, symlinks with their target text', async () => {
    const r = await vmbkp(['files', 'ls', ...base, '/docs', '--json']);
    ok(r, 'files ls');
    const j = JSON.parse(r.stdout) as { disk: string; fs: string; path: string; entries: { name: string; type: string; mode: number; size: number; mtime: string; target?: string }[] };
    assert.equal(j.fs, 'sda1');
    assert.equal(j.path, '/docs');
    const byName = new Map(j.entries.map((e) => [e.name, e]));
    assert.deepEqual([...byName.keys()].sort(), ['abs-link', 'näïve ünïcode €.txt', 'rel-link', 'space name.txt']);
    const space = byName.get('space name.txt')!;
    assert.deepEqual({ type: space.type, mode: space.mode, size: space.size, mtime: space.mtime }, { type: 'file', mode: 0o640, size: gen1[SPACE]!.length, mtime: MTIME.toISOString() });
    assert.deepEqual({ type: byName.get('abs-link')!.type, target: byName.get('abs-link')!.target }, { type: 'symlink', target: '/etc/passwd' });
  });

  it('find across two generations: sizes, digests, and which files changed', async () => {
    const r = await vmbkp(['files', 'find', ...base, '--generations', 'all', '/etc', '--json']);
    ok(r, 'files find');
    const j = JSON.parse(r.stdout) as { generations: number[]; matches: { path: string; changed: boolean; versions: { generation: number; type: string; size: number; sha256?: string }[] }[] };
    assert.deepEqual(j.generations, [1, 2]);
    const m = new Map(j.matches.map((x) => [x.path, x]));
    const conf = m.get('/etc/nginx/nginx.conf')!;
    assert.equal(conf.changed, true);
    assert.deepEqual(conf.versions.map((v) => [v.generation, v.size, v.sha256]), [[1, gen1['etc/nginx/nginx.conf']!.length, sha(gen1['etc/nginx/nginx.conf']!)], [2, gen2['etc/nginx/nginx.conf']!.length, sha(gen2['etc/nginx/nginx.conf']!)]]);
    assert.equal(m.get('/etc/nginx/mime.types')!.changed, false);
    assert.deepEqual(m.get('/etc/hosts')!.versions.map((v) => v.generation), [1], 'removed in 2');
    assert.equal(m.get('/etc/hosts')!.changed, true);
    assert.deepEqual(m.get('/etc/nginx/new.conf')!.versions.map((v) => v.generation), [2], 'new in 2');
    assert.equal(m.get('/etc/nginx')!.versions[0]!.type, 'directory');
    assert.equal(m.get('/etc/nginx')!.changed, false, 'a directory is compared by type, not content');
  });

  it('get: one small file of a 2 GiB generation reads little, keeps mode and mtime, is not overwritten; --overwrite, odd names, symlinks kept as links, nothing outside', async () => {
    const to = path.join(tmp.dir, 'get1');
    const r = await vmbkp(['files', 'get', ...base, '--generation', '1', '/etc/hosts', '--to', to, '--json']);
    ok(r, 'files get');
    const j = JSON.parse(r.stdout) as { generation: number; files: number; directories: number; symlinks: number; bytes: number; bytesRead: number };
    assert.deepEqual({ g: j.generation, f: j.files, d: j.directories, s: j.symlinks, b: j.bytes }, { g: 1, f: 1, d: 0, s: 0, b: gen1['etc/hosts']!.length });
    assert.ok(j.bytesRead > 0 && j.bytesRead <= 0.05 * DISK_SIZE, `bytesRead ${j.bytesRead} of a ${DISK_SIZE}-byte disk`);
    const got = path.join(to, 'hosts');
    assert.equal(await sha256File(got), sha(gen1['etc/hosts']!));
    const st = await fs.stat(got);
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(st.mtime.getTime(), MTIME.getTime());
    // Again, without --overwrite: refused before anything starts, the file stays.
    await fs.writeFile(got, 'local edit\n');
    const again = await vmbkp(['files', 'get', ...base, '--generation', '1', '/etc/hosts', '--to', to]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(oneLine(again.stderr), new RegExp(`${got.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} exists: not overwritten`));
    assert.equal(await fs.readFile(got, 'utf8'), 'local edit\n');
    assert.deepEqual(await fs.readdir(to), ['hosts'], 'nothing else written');

    // --overwrite, with files and directories with odd names and symlinks.
    const all = await vmbkp(['files', 'get', ...base, '--generation', '1', '/etc/hosts', '/docs', '/etc/nginx', '/docs/abs-link', '--to', to, '--overwrite']);
    ok(all, 'files get --overwrite');
    assert.match(all.stdout, /read \d+ bytes from the repository/);
    assert.equal(await fs.readFile(path.join(to, 'hosts'), 'utf8'), gen1['etc/hosts'], '--overwrite replaced the local edit');
    for (const rel of [SPACE, UNICODE, 'etc/nginx/nginx.conf', 'etc/nginx/mime.types']) {
      const local = path.join(to, rel.replace(/^etc\//, ''));
      assert.equal(await sha256File(local), sha(gen1[rel]!), rel);
      assert.equal((await fs.stat(local)).mtime.getTime(), MTIME.getTime(), `${rel} mtime`);
    }
    const abs = await fs.lstat(path.join(to, 'docs/abs-link'));
    assert.ok(abs.isSymbolicLink(), 'a symlink stays a symlink');
    assert.equal(await fs.readlink(path.join(to, 'docs/abs-link')), '/etc/passwd', 'its text kept, not resolved on the host');
    assert.equal(await fs.readlink(path.join(to, 'abs-link')), '/etc/passwd', 'a symlink named on the command line is not followed either');
    assert.equal(await fs.readlink(path.join(to, 'docs/rel-link')), '../../../../../../tmp/escaped-by-vmbkp');
    assert.ok(!existsSync('/tmp/escaped-by-vmbkp'), 'nothing written through a link');
    assert.deepEqual((await fs.readdir(to)).sort(), ['abs-link', 'docs', 'hosts', 'nginx'], 'no staging directory left');
  });

  it('get --to - writes a tar stream of the directory, its last component kept', async () => {
    const out = path.join(tmp.dir, 'untar');
    await fs.mkdir(out);
    const tarFile = path.join(tmp.dir, 'nginx.tar');
    const r = await run('sh', ['-c', `"$NODE" "$0" files get "$@" > ${JSON.stringify(tarFile)}`, CLI, ...base, '/etc/nginx', '--to', '-'], { env: { NODE: process.execPath } });
    ok(r, 'files get --to -');
    assert.match(r.stderr, /read \d+ bytes from the repository/);
    ok(await run('tar', ['-x', '-f', tarFile, '-C', out]), 'tar -x');
    assert.equal(await sha256File(path.join(out, 'nginx/nginx.conf')), sha(gen2['etc/nginx/nginx.conf']!));
    assert.equal(await sha256File(path.join(out, 'nginx/new.conf')), sha(gen2['etc/nginx/new.conf']!));
  });

  it('mount shows the same tree read-only; SIGINT unmounts and leaves no process behind', async () => {
    const dir = path.join(tmp.dir, 'mnt');
    await fs.mkdir(dir);
    const cli = startVmbkp(['files', 'mount', ...base, '--fs', 'sda1', dir]);
    let stdout = '';
    const mounted = new Promise<void>((resolve, reject) => {
      cli.child.stdout!.on('data', (d) => { stdout += d; if (/mounted .* at /.test(stdout)) resolve(); });
      void cli.done.then((res) => reject(new Error(`files mount exited ${res.code}: ${res.stderr}`)));
    });
    await mounted;
    try {
      for (const [rel, content] of Object.entries(gen2)) assert.equal(await fs.readFile(path.join(dir, rel), 'utf8'), content, rel);
      assert.equal(sha(await fs.readFile(path.join(dir, 'big/random.bin'))), sha(big));
      assert.equal(await fs.readlink(path.join(dir, 'docs/abs-link')), '/etc/passwd');
      await assert.rejects(fs.writeFile(path.join(dir, 'new-file'), 'x'), /EROFS|EACCES|EPERM/);
    } finally {
      process.kill(cli.pid, 'SIGINT');
    }
    const res = await cli.done;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /unmounted .*read \d+ bytes from the repository/);
    assert.ok(!(await fs.readFile('/proc/mounts', 'utf8')).includes(dir), 'unmounted');
    const left: string[] = [];
    for (const pid of await fs.readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(dir)) left.push(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
    }
    assert.deepEqual(left, [], 'no guestmount left');
  });

  it('SIGINT during a get removes the partial file and says so', async () => {
    const to = path.join(tmp.dir, 'interrupted');
    const cli = startVmbkp(['files', 'get', ...base, '/big/random.bin', '--to', to]);
    // Signalled once the download has written something into the staging directory.
    let partial: string | undefined;
    while (!partial) {
      const staging = (await fs.readdir(to).catch(() => [] as string[])).find((n) => n.startsWith('.vmbkp-get-'));
      const file = staging && path.join(to, staging, 'random.bin');
      if (file && ((await fs.stat(file).catch(() => undefined))?.size ?? 0) > 0) partial = file;
      else if (cli.child.exitCode !== null) break;
      else await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(partial, 'the get was seen writing');
    process.kill(cli.pid, 'SIGINT');
    const res = await cli.done;
    assert.equal(res.code, 130, res.stderr);
    assert.match(res.stderr, /interrupted .*removed/);
    assert.deepEqual(await fs.readdir(to), [], 'no partial file, no staging directory');
  });

  it('errors are one line with their exit code: unknown --fs, a path not there, a disk not in the generation', async () => {
    const fsErr = await vmbkp(['files', 'ls', ...base, '--fs', 'sdz9', '/']);
    assert.equal(fsErr.code, 2, fsErr.stderr);
    assert.match(oneLine(fsErr.stderr), /--fs: disk 2000 has no filesystem sdz9; it has: sda1 \(ext4\)/);
    const missing = await vmbkp(['files', 'ls', ...base, '/no/such/dir']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(oneLine(missing.stderr), /\/no\/such\/dir does not exist/);
    const disk = await vmbkp(['files', 'ls', ...base, '--disk', '2001', '/']);
    assert.equal(disk.code, 2, disk.stderr);
    assert.match(oneLine(disk.stderr), /generation 2 has no disk 2001/);
  });
});
