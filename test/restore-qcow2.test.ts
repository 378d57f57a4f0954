/**
 * Single-disk restore to a qcow2 image (qemu-img creates it, qemu-nbd serves it, vmbkp
 * writes it over NBD): identical content to the backed-up disk, sparse, refused over an
 * existing file, and removed again when the restore fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { flipByte, listFiles, makeImage, oneLine, sha256File, tempDir, vmbkp } from './helpers.js';

const execFileP = promisify(execFile);

async function qcow2Info(file: string): Promise<{ format: string; 'virtual-size': number; 'actual-size': number }> {
  const { stdout } = await execFileP('qemu-img', ['info', '--output=json', file]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size': number };
}

async function rawOf(qcow2: string, out: string): Promise<string> {
  await execFileP('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow2, out]);
  return sha256File(out);
}

describe('restore to qcow2', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let image: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    image = path.join(dir, 'disk.img');
    await makeImage(image, '64M', 7);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    const b = await vmbkp(['backup', '--repo', repo, '--set', 'vm', `sda=file:${image}`]);
    assert.equal(b.code, 0, b.stderr);
  });
  after(async () => { await cleanup?.(); });

  it('writes a sparse qcow2 image whose content equals the disk', async () => {
    const out = path.join(dir, 'sda.qcow2');
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `qcow2:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /to qcow2:\S+sda\.qcow2: 64\.0 MiB disk/);
    const info = await qcow2Info(out);
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], 64 * 1024 * 1024);
    assert.ok(info['actual-size'] < info['virtual-size'], `sparse: ${info['actual-size']} bytes on disk`);
    assert.equal(await rawOf(out, path.join(dir, 'sda.raw')), await sha256File(image));
  });

  it('refuses an existing file without --overwrite, and replaces it with', async () => {
    const out = path.join(dir, 'exists.qcow2');
    await fs.writeFile(out, 'precious');
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `qcow2:${out}`]);
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /^vmbkp: error: restoring to \S+exists\.qcow2 refused: the file exists \(pass --overwrite to replace it\)$/);
    assert.equal(await fs.readFile(out, 'utf8'), 'precious');
    const o = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--disk', 'sda', '--to', `qcow2:${out}`, '--overwrite']);
    assert.equal(o.code, 0, o.stderr);
    assert.equal(await rawOf(out, path.join(dir, 'exists.raw')), await sha256File(image));
  });

  it('a corrupted chunk: exit 5 and no image left behind', async () => {
    const damaged = path.join(dir, 'damaged');
    await fs.cp(repo, damaged, { recursive: true });
    const packs = await listFiles(path.join(damaged, 'data'));
    assert.ok(packs.length > 0);
    const pack = path.join(damaged, 'data', packs[0]!);
    await flipByte(pack, Math.floor((await fs.stat(pack)).size / 3));
    const out = path.join(dir, 'damaged.qcow2');
    const r = await vmbkp(['restore', '--repo', damaged, '--set', 'vm', '--disk', 'sda', '--to', `qcow2:${out}`]);
    assert.equal(r.code, 5, r.stderr);
    await assert.rejects(fs.stat(out), /ENOENT/);
  });
});
