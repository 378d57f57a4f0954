/**
 * The server's file browser against real libguestfs: a GPT+ext4 disk image (test/fs-images.ts)
 * backed up with the CLI into a file: repository, then through the API over HTTPS: a viewer
 * lists the filesystems, an operator lists a directory, a viewer downloads a file whose
 * sha256 is the original's (its host copy removed after); a path with `..` and a directory are refused (400) before any
 * appliance starts; the downloads (refused ones too) are in the audit log.
 *
 * Each listing or download starts one appliance (15–25 s under TCG): three in all.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TreeFile, TREE, buildImage } from './fs-images.js';
import { REPO_PASSWORD_FILE, tempDir, vmbkp } from './helpers.js';
import { ApiClient, type StartedServer, addUser, createToken, startServer, until } from './server-fixture.js';

const skip = spawnSync('guestfish', ['--version']).status !== 0 || spawnSync('mke2fs', ['-V']).status !== 0 ? 'needs libguestfs-tools and e2fsprogs' : false;
const FILES = '/api/v1/repositories/main/sets/disk/generations/latest/files';

// A guard against a hang (until() polls without end), not a measure: the three appliances take ~1 min here.
describe('vmbkp server: the file browser', { skip, timeout: 600_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: StartedServer | undefined;
  let ca: string;
  let viewer: ApiClient;
  let operator: ApiClient;
  let admin: ApiClient;
  let blob: TreeFile;

  /** The raw bytes of a GET (ApiClient decodes text). */
  function download(token: string, route: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(route, server!.url), { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  }
  let viewerToken: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-server-files-'));
    const img = await buildImage('gpt-ext4', 1, dir);
    blob = img.entries.find((e): e is TreeFile => e.type === 'file' && e.path === TREE.blob)!;
    const repo = path.join(dir, 'repo');
    for (const args of [['init', '--repo', repo], ['backup', '--repo', repo, '--set', 'disk', `sda=file:${img.path}`]]) {
      const r = await vmbkp(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const config = path.join(dir, 'server.yaml');
    await fs.writeFile(config, [
      'listen: "127.0.0.1:0"', `stateDir: ${path.join(dir, 'state')}`,
      'repositories:', `  - { name: main, repo: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} }`, '',
    ].join('\n'));
    await addUser(config, dir, 'look', 'viewer', 'viewer password 1');
    await addUser(config, dir, 'op', 'operator', 'operator password 1');
    await addUser(config, dir, 'boss', 'admin', 'admin password 1');
    viewerToken = await createToken(config, 'look');
    const [op, boss] = [await createToken(config, 'op'), await createToken(config, 'boss')];
    // The server's temporary files in a directory of the test's, to see the download's copy go.
    await fs.mkdir(path.join(dir, 'tmp'));
    server = await startServer(config, { TMPDIR: path.join(dir, 'tmp') });
    ca = await fs.readFile(path.join(dir, 'state', 'server-cert.pem'), 'utf8');
    viewer = new ApiClient(server.url, ca, viewerToken);
    operator = new ApiClient(server.url, ca, op);
    admin = new ApiClient(server.url, ca, boss);
  });

  after(async () => {
    await server?.stop();
    await cleanup();
  });

  it('lets a viewer list the filesystems and an operator a directory, in the CLI\'s shapes', async () => {
    const fss = await viewer.request('GET', FILES);
    assert.equal(fss.status, 200, fss.text);
    const list = fss.json<{ set: string; generation: number; filesystems: { disk: string; name: string; type: string; label: string | null }[] }>();
    assert.deepEqual([list.set, list.generation], ['disk', 1]);
    assert.deepEqual(list.filesystems.map((f) => [f.disk, f.name, f.type, f.label]), [['sda', 'sda1', 'ext4', 'root']]);

    const ls = await operator.request('GET', `${FILES}?disk=sda&fs=sda1&path=${encodeURIComponent('/docs')}`);
    assert.equal(ls.status, 200, ls.text);
    const got = ls.json<{ path: string; fs: string; entries: { name: string; type: string; size: number; mtime: string }[] }>();
    assert.deepEqual([got.path, got.fs], ['/docs', 'sda1']);
    const want = ['read me.txt', 'café ünï 日本.txt', 'removed.txt', 'up'].sort();
    assert.deepEqual(got.entries.map((e) => e.name).sort(), want);
    const spaced = got.entries.find((e) => e.name === 'read me.txt')!;
    assert.deepEqual([spaced.type, spaced.size, spaced.mtime], ['file', 'Notes kept in a file whose name has spaces.\n'.length, '2026-01-02T03:04:06.000Z']);
    assert.equal(got.entries.find((e) => e.name === 'up')!.type, 'symlink');
  });

  it('downloads a file for a viewer, with its sha256, as an attachment; refuses .. and a directory (400)', async () => {
    const r = await download(viewerToken, `${FILES}/content?fs=sda1&path=${encodeURIComponent(blob.path)}`);
    assert.equal(r.status, 200, r.body.toString('utf8', 0, 300));
    assert.equal(createHash('sha256').update(r.body).digest('hex'), blob.sha256);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.headers['content-disposition'], 'attachment; filename="blob.bin"; filename*=UTF-8\'\'blob.bin');
    // The host copy is removed once streamed.
    await until(async () => ((await fs.readdir(path.join(dir, 'tmp'))).some((n) => n.startsWith('vmbkp-read-')) ? undefined : true));

    // Refused before any appliance starts: a `..` component, and the root (always a directory).
    for (const p of ['/data/../etc/app.conf', '/']) {
      const bad = await viewer.request('GET', `${FILES}/content?fs=sda1&path=${encodeURIComponent(p)}`);
      assert.equal(bad.status, 400, `${p}: ${bad.text}`);
      assert.equal(bad.json<{ error: { code: string } }>().error.code, 'USAGE');
    }
    const badLs = await viewer.request('GET', `${FILES}?fs=sda1&path=${encodeURIComponent('/docs/../..')}`);
    assert.equal(badLs.status, 400, badLs.text);

    // Every download is in the audit log, though a GET: who, which file, how it ended.
    const audit = await admin.request('GET', '/api/v1/audit');
    assert.equal(audit.status, 200, audit.text);
    const rows = audit.json<{ user: string; method: string; path: string; status: number; summary: string }[]>()
      .filter((a) => a.method === 'GET' && a.path.endsWith('/files/content'));
    assert.deepEqual(rows.map((a) => [a.user, a.status]).reverse(), [['look', 200], ['look', 400], ['look', 400]]);
    assert.match(rows.at(-1)!.summary, /download main set disk generation 1 disk sda filesystem sda1 path \/data\/blob\.bin \(262144 bytes\)/);
    const doc = (await viewer.request('GET', '/api/v1/openapi.json')).json<{ paths: Record<string, { get?: unknown }> }>();
    for (const p of ['/repositories/{repo}/sets/{set}/generations/{gen}/files', '/repositories/{repo}/sets/{set}/generations/{gen}/files/content']) assert.ok(doc.paths[p]?.get, `openapi.json lacks GET ${p}`);
    // Listings are plain reads: not audited.
    assert.equal(audit.json<{ path: string }[]>().filter((a) => a.path.endsWith('/files')).length, 0);
  });
});
