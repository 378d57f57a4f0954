/** Backup from and restore to NBD exports served by real nbdkit. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../src/nbd/client.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { MULTI_CONN, NbdSource } from '../src/sources/nbd.js';
import { makeImage, sha256File, startNbdkit, tempDir, vmbkp, vmbkpJson } from './helpers.js';

interface Gen { disks: { name: string; mode: string; bytesRead: number }[] }

async function exportSha(uri: string): Promise<string> {
  const c = await NbdClient.connect(parseNbdUri(uri));
  const h = createHash('sha256');
  for (let o = 0; o < c.size; o += 4 << 20) h.update(await c.read(o, Math.min(4 << 20, c.size - o)));
  await c.close();
  return h.digest('hex');
}

describe('NBD disks', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  });
  after(() => cleanup());

  it('an image served by nbdkit file backs up, and restores to a file and to an NBD export, identical', async () => {
    const image = path.join(dir, 'disk.img');
    await makeImage(image, '64M', 31);
    const src = await startNbdkit(dir, ['file', image, '--readonly'], 'src');
    const dst = await startNbdkit(dir, ['memory', '64M'], 'dst');
    try {
      const g = await vmbkpJson<Gen>(['backup', '--repo', repo, '--set', 'nbd', `sda=${src.uri}`]);
      assert.equal(g.disks[0]!.mode, 'full');
      const out = path.join(dir, 'restored.img');
      assert.equal((await vmbkp(['restore', '--repo', repo, '--set', 'nbd', '--disk', 'sda', '--to', `file:${out}`])).code, 0);
      assert.equal(await sha256File(out), await sha256File(image));
      const r = await vmbkp(['restore', '--repo', repo, '--set', 'nbd', '--disk', 'sda', '--to', dst.uri]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await exportSha(dst.uri), await sha256File(image));
    } finally {
      await src.stop();
      await dst.stop();
    }
  });

  it('nbdkit sparse-random and a TCP listener: backup restores to what the export serves', async () => {
    const port = 20000 + (process.pid % 20000);
    const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '--readonly', '-i', '127.0.0.1', '-p', String(port), 'sparse-random', '128M', 'seed=7'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      const uri = `nbd://127.0.0.1:${port}/`;
      let ready = false;
      for (let i = 0; i < 200 && !ready; i++) {
        ready = await NbdClient.connect(parseNbdUri(uri)).then(async (c) => { await c.close(); return true; }, () => false);
        if (!ready) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(ready, 'nbdkit listens on TCP');
      const g = await vmbkpJson<Gen>(['backup', '--repo', repo, '--set', 'random', `sda=${uri}`]);
      assert.ok(g.disks[0]!.bytesRead < 128 * 1024 * 1024, 'sparse-random reports holes');
      const out = path.join(dir, 'random.img');
      assert.equal((await vmbkp(['restore', '--repo', repo, '--set', 'random', '--disk', 'sda', '--to', `file:${out}`])).code, 0);
      assert.equal(await sha256File(out), await exportSha(uri));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('a 64 GiB mostly empty export is read only where it holds data (base:allocation)', async () => {
    const srv = await startNbdkit(dir, ['memory', '64G'], 'big');
    try {
      const c = await NbdClient.connect(parseNbdUri(srv.uri));
      const blocks = [0, 7, 33, 63].map((g) => ({ at: g * 2 ** 30, data: randomBytes(1 << 20) }));
      for (const b of blocks) await c.write(b.at, b.data);
      await c.close();
      const g = await vmbkpJson<Gen>(['backup', '--repo', repo, '--set', 'big', `sda=${srv.uri}`]);
      assert.equal(g.disks[0]!.bytesRead, 4 * (1 << 20), 'only the four written MiB are read');
    } finally {
      await srv.stop();
    }
  });

  it('reads are spread over several connections only when the server offers CAN_MULTI_CONN', async () => {
    const multi = await startNbdkit(dir, ['memory', '8M'], 'multi');
    const single = await startNbdkit(dir, ['--filter=multi-conn', 'memory', '8M', 'multi-conn-mode=disable'], 'single');
    try {
      const c = await NbdClient.connect(parseNbdUri(multi.uri));
      const data = randomBytes(8 << 20);
      await c.write(0, data);
      await c.close();
      const m = await NbdSource.open(multi.uri);
      assert.equal(m.connections, MULTI_CONN);
      const parts = await Promise.all(Array.from({ length: 8 }, (_, i) => m.read(i << 20, 1 << 20)));
      assert.deepEqual(Buffer.concat(parts), data);
      await m.close();
      const s1 = await NbdSource.open(single.uri);
      assert.equal(s1.connections, 1);
      await s1.close();
    } finally {
      await multi.stop();
      await single.stop();
    }
  });

  it('a restore target of another size is refused, naming both sizes', async () => {
    const dst = await startNbdkit(dir, ['memory', '1M'], 'small');
    try {
      const r = await vmbkp(['restore', '--repo', repo, '--set', 'nbd', '--disk', 'sda', '--to', dst.uri]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^vmbkp: error: restore target .* is 1048576 bytes; the disk is 67108864\n$/);
    } finally {
      await dst.stop();
    }
  });
});
