/**
 * The resource endpoints of `vmbkp server`, driven over HTTPS against the real server
 * process with API tokens made by the CLI: a file:-disk repository with two generations
 * (made by the CLI) seen through sets, generations with their figures, show and status in
 * the CLI's own JSON shapes; a restore-disk job followed over SSE to its end, the restored
 * file checked by sha256; an NBD export read by nbdcopy, then stopped; a prune preview and
 * a prune dry-run job that change nothing; a verify job; bad input (400 with the CLI's
 * code, 409 for an existing target); a viewer refused (403). One server for the file.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, makeImage, mutateImage, run, sha256File, tempDir, treeDigest, vmbkp, vmbkpJson } from './helpers.js';
import { type StartedServer, addUser, createToken, startServer, until } from './server-fixture.js';

interface Reply { status: number; body: unknown; text: string }

describe('vmbkp server: repositories, generations, restores, exports, previews', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: StartedServer | undefined;
  let url: string;
  let ca: string;
  let operator: string;
  let viewer: string;
  const file = (n: string) => path.join(dir, n);
  const repo = () => file('repo');

  function api(method: string, route: string, token: string, body?: unknown): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(`${url}${route}`, {
        method, ca, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { text += d; });
        res.on('end', () => {
          let parsed: unknown;
          try { parsed = JSON.parse(text); } catch { parsed = undefined; }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  async function ok<T>(method: string, route: string, body?: unknown, status = 200): Promise<T> {
    const r = await api(method, route, operator, body);
    assert.equal(r.status, status, `${method} ${route}: ${r.text}`);
    return r.body as T;
  }

  /** Follows the job's event stream until its `end` event: the final JobSummary. */
  function waitForJob(id: number): Promise<{ status: string; error: unknown }> {
    return new Promise((resolve, reject) => {
      const req = request(`${url}/api/v1/jobs/${id}/events`, { ca, headers: { authorization: `Bearer ${operator}`, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) { reject(new Error(`events of job ${id}: HTTP ${res.statusCode}`)); res.resume(); return; }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (event === 'end') { resolve(JSON.parse(data) as { status: string; error: unknown }); req.destroy(); }
          }
        });
        res.on('end', () => reject(new Error(`events of job ${id} ended without an end event`)));
      });
      req.on('error', (err) => { if (!req.destroyed) reject(err); });
      req.end();
    });
  }

  async function job(body: unknown): Promise<{ id: number; summary: { status: string; error: unknown }; detail: { result: unknown; status: string } }> {
    const { id } = await ok<{ id: number }>('POST', '/api/v1/jobs', body, 202);
    const summary = await waitForJob(id);
    const detail = await ok<{ result: unknown; status: string }>('GET', `/api/v1/jobs/${id}`);
    return { id, summary, detail };
  }

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-server-resources-'));
    await makeImage(file('a.img'), '4M', 1701);
    await mutateImage(file('a.img'), file('a2.img'), file('a2.json'), 20, 1702);
    for (const args of [['init', '--repo', repo()], ['backup', '--repo', repo(), '--set', 'web', `sda=file:${file('a.img')}`],
      ['backup', '--repo', repo(), '--set', 'web', `sda=file:${file('a2.img')}`]]) {
      const r = await vmbkp(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const config = file('server.yaml');
    await fs.writeFile(config, [
      'listen: "127.0.0.1:0"', `stateDir: ${file('state')}`,
      'repositories:', `  - { name: main, repo: ${repo()}, passwordFile: ${REPO_PASSWORD_FILE} }`, '',
    ].join('\n'));
    await addUser(config, dir, 'op', 'operator', 'operator password 1');
    await addUser(config, dir, 'look', 'viewer', 'viewer password 1');
    operator = await createToken(config, 'op');
    viewer = await createToken(config, 'look');
    server = await startServer(config);
    url = server.url;
    ca = await fs.readFile(path.join(file('state'), 'server-cert.pem'), 'utf8');
  });

  after(async () => {
    await server?.stop();
    await cleanup();
  });

  it('shows sets, generations and status in the CLI\'s JSON shapes, with each generation\'s figures', async () => {
    const cliList = await vmbkpJson<unknown>(['list', '--repo', repo()]);
    assert.deepEqual(await ok('GET', '/api/v1/repositories/main/sets'), cliList);
    for (const g of ['1', '2', 'latest']) {
      assert.deepEqual(await ok('GET', `/api/v1/repositories/main/sets/web/generations/${g}`),
        await vmbkpJson(['show', '--repo', repo(), '--set', 'web', '--generation', g]));
    }
    const cliSet = await vmbkpJson<{ generations: { generation: number; mode: string; totals: { bytesRead: number; bytesStored: number; durationMs: number } }[] }>(['show', '--repo', repo(), '--set', 'web']);
    const gens = await ok<{ generation: number; mode: string; bytesRead: number; bytesStored: number; durationMs: number; verify: { status: string } }[]>('GET', '/api/v1/repositories/main/sets/web/generations');
    assert.deepEqual(gens.map((g) => [g.generation, g.mode, g.bytesRead, g.bytesStored, g.durationMs]),
      cliSet.generations.map((g) => [g.generation, g.mode, g.totals.bytesRead, g.totals.bytesStored, g.totals.durationMs]));
    // The second generation read the whole image and stored only what changed: less than the first.
    assert.ok(gens[1]!.bytesStored > 0 && gens[1]!.bytesStored < gens[0]!.bytesStored, JSON.stringify(gens));
    assert.deepEqual(gens.map((g) => g.verify.status), ['unverified', 'unverified']);

    const status = await vmbkpJson<{ storage: { bytes: number }; dedupRatio: number; logicalBytes: number; sets: unknown[] }>(['status', '--repo', repo()]);
    const viaApi = await ok<typeof status>('GET', '/api/v1/repositories/main');
    assert.deepEqual([viaApi.storage, viaApi.dedupRatio, viaApi.logicalBytes], [status.storage, status.dedupRatio, status.logicalBytes]);
    const repos = await ok<{ name: string; location: string; storedBytes: number; dedupRatio: number }[]>('GET', '/api/v1/repositories');
    assert.deepEqual(repos.map((r) => [r.name, r.location, r.storedBytes, r.dedupRatio]), [['main', repo(), status.storage.bytes, status.dedupRatio]]);

    // The OpenAPI document describes these routes and the job bodies.
    const doc = await ok<{ paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } }>('GET', '/api/v1/openapi.json');
    for (const p of ['/repositories', '/repositories/{repo}', '/repositories/{repo}/growth', '/repositories/{repo}/sets', '/repositories/{repo}/sets/{set}/generations',
      '/repositories/{repo}/sets/{set}/generations/{gen}', '/exports', '/exports/{id}', '/preview']) assert.ok(doc.paths[p], `openapi.json lacks ${p}`);
    for (const k of ['RestoreDiskJob', 'RestoreVmJob', 'PruneJob', 'VerifyJob', 'GenerationFigures', 'Export']) assert.ok(doc.components.schemas[k], `openapi.json lacks ${k}`);
    const missing = await api('GET', '/api/v1/repositories/main/sets/nosuch/generations', operator);
    assert.equal(missing.status, 404, missing.text);
    assert.equal((missing.body as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  it('restores a disk to a path as a job followed over SSE; refuses a relative or existing target and a VM restore without a name', async () => {
    const target = file('restored-1.img');
    const { summary, detail } = await job({ kind: 'restore-disk', repository: 'main', set: 'web', generation: 1, disk: 'sda', to: target });
    assert.equal(summary.status, 'succeeded', JSON.stringify(summary));
    assert.equal(await sha256File(target), await sha256File(file('a.img')));
    assert.equal((detail.result as { bytesWritten: number; size: number }).size, 4 * 1024 * 1024);

    const relative = await api('POST', '/api/v1/jobs', operator, { kind: 'restore-disk', repository: 'main', set: 'web', disk: 'sda', to: 'out.img' });
    assert.equal(relative.status, 400, relative.text);
    assert.equal((relative.body as { error: { code: string } }).error.code, 'INPUT_INVALID');
    const exists = await api('POST', '/api/v1/jobs', operator, { kind: 'restore-disk', repository: 'main', set: 'web', disk: 'sda', to: target });
    assert.equal(exists.status, 409, exists.text);
    assert.equal((exists.body as { error: { code: string } }).error.code, 'ALREADY_EXISTS');
    // A VM restore without the VM's name is refused before any job starts.
    const jobsBefore = (await ok<unknown[]>('GET', '/api/v1/jobs')).length;
    const noName = await api('POST', '/api/v1/jobs', operator, { kind: 'restore-vm', repository: 'main', set: 'web', vcenter: 'prod' });
    assert.equal(noName.status, 400, noName.text);
    assert.equal((noName.body as { error: { code: string; message: string } }).error.code, 'INPUT_INVALID');
    assert.match((noName.body as { error: { message: string } }).error.message, /name/);
    assert.equal((await ok<unknown[]>('GET', '/api/v1/jobs')).length, jobsBefore);
    // The preview says the same without refusing: what would be written, and that the target exists.
    const plan = await ok<{ generation: number; size: number; target: { exists: boolean }; refused?: string }>('POST', '/api/v1/preview',
      { kind: 'restore-disk', repository: 'main', set: 'web', disk: 'sda', to: target });
    assert.equal(plan.generation, 2);
    assert.equal(plan.target.exists, true);
    assert.match(plan.refused ?? '', /exists/);
  });

  it('exports a generation over NBD, readable by nbdcopy, until stopped', async () => {
    const e = await ok<{ id: string; uri: string; generation: number }>('POST', '/api/v1/exports', { repository: 'main', set: 'web', generation: 2, disk: 'sda' }, 201);
    assert.equal(e.generation, 2);
    assert.deepEqual((await ok<{ id: string }[]>('GET', '/api/v1/exports')).map((x) => x.id), [e.id]);
    const out = file('exported.img');
    const copy = await run('nbdcopy', [e.uri, out]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(await sha256File(out), await sha256File(file('a2.img')));
    await ok('DELETE', `/api/v1/exports/${e.id}`);
    assert.deepEqual(await ok('GET', '/api/v1/exports'), []);
    const after = await run('nbdinfo', [e.uri]);
    assert.notEqual(after.code, 0, 'the export still answers after it was stopped');
    const again = await api('DELETE', `/api/v1/exports/${e.id}`, operator);
    assert.equal(again.status, 404, again.text);
  });

  it('previews a prune and runs a prune dry run: they list what would go and remove nothing', async () => {
    const before = await treeDigest(repo());
    const preview = await ok<{ set: string; remove: number[]; keep: { generation: number }[] }>('POST', '/api/v1/preview',
      { kind: 'prune', repository: 'main', set: 'web', keep: { last: 1 } });
    assert.equal(preview.set, 'web');
    assert.deepEqual(preview.remove, [1]);
    assert.deepEqual(preview.keep.map((k) => k.generation), [2]);
    const { summary, detail } = await job({ kind: 'prune', repository: 'main', set: 'web', keep: { last: 1 }, dryRun: true });
    assert.equal(summary.status, 'succeeded', JSON.stringify(summary));
    assert.deepEqual((detail.result as { remove: number[] }).remove, [1]);
    assert.deepEqual(await treeDigest(repo()), before);
    assert.equal((await ok<unknown[]>('GET', '/api/v1/repositories/main/sets/web/generations')).length, 2);
  });

  it('runs verify as a job; generations then show as verified', async () => {
    const { summary, detail } = await job({ kind: 'verify', repository: 'main' });
    assert.equal(summary.status, 'succeeded', JSON.stringify(summary));
    assert.equal((detail.result as { ok: boolean; generations: number }).ok, true);
    assert.equal((detail.result as { generations: number }).generations, 2);
    const gens = await ok<{ verify: { status: string } }[]>('GET', '/api/v1/repositories/main/sets/web/generations');
    assert.deepEqual(gens.map((g) => g.verify.status), ['ok', 'ok']);
    // Growth: one size sample after each job on the repository; the newest (after the verify, which wrote its record) is the size status reports now.
    const { storage } = await vmbkpJson<{ storage: { bytes: number } }>(['status', '--repo', repo()]);
    const jobs = (await ok<{ repository: string | null }[]>('GET', '/api/v1/jobs')).filter((j) => j.repository === 'main').length;
    const growth = await until(async () => {
      const g = await ok<{ time: string; storedBytes: number }[]>('GET', '/api/v1/repositories/main/growth');
      return g.length >= jobs ? g : undefined;
    });
    assert.equal(growth.at(-1)!.storedBytes, storage.bytes);
    assert.ok(growth.every((x, i) => i === 0 || x.time >= growth[i - 1]!.time), 'growth samples are oldest first');
  });

  it('refuses a viewer jobs, exports and previews (403), and answers its reads', async () => {
    for (const [route, body] of [
      ['/api/v1/jobs', { kind: 'verify', repository: 'main' }],
      ['/api/v1/exports', { repository: 'main', set: 'web', disk: 'sda' }],
      ['/api/v1/preview', { kind: 'prune', repository: 'main', set: 'web', keep: { last: 1 } }],
    ] as const) {
      const r = await api('POST', route, viewer, body);
      assert.equal(r.status, 403, `${route}: ${r.text}`);
    }
    assert.deepEqual(await api('GET', '/api/v1/exports', viewer).then((r) => r.status), 200);
  });
});
