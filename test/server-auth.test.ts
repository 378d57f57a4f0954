/**
 * `vmbkp server`: no anonymous access (401), roles (a viewer gets 403 starting a job and
 * never sees a secret in any answer), CSRF on cookie-authenticated mutating requests,
 * API tokens without CSRF, the audit log of who started what, and the self-signed
 * certificate whose printed fingerprint is the one served. No lab: the recipe's vCenter
 * is a closed port, so the jobs it starts fail at once, which is all these checks need.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { REPO_PASSWORD_FILE, tempDir, vmbkp } from './helpers.js';
import { ApiClient, type StartedServer, addUser, createToken, startServer, until } from './server-fixture.js';

const PASSWORDS = { admin: 'admin-secret-1', operator: 'operator-secret-2', viewer: 'viewer-secret-3' };
const VCENTER_PASSWORD = 'vcenter-secret-4';

interface Job { id: number; status: string; user: string | null; name: string }

// The limit only turns a hang into a failure; nothing is timed.
describe('vmbkp server: authentication, roles, CSRF, audit, TLS', { timeout: 600_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let config: string;
  let recipe: string;
  let server: StartedServer;
  let ca: string;
  const tokens: Record<string, string> = {};

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-server-auth-'));
    const repo = path.join(dir, 'repo');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    await fs.writeFile(path.join(dir, 'vcenter.password'), `${VCENTER_PASSWORD}\n`, { mode: 0o600 });
    recipe = path.join(dir, 'nightly.yaml');
    await fs.writeFile(recipe, [
      'version: 1', 'kind: backup',
      // A closed port: the run fails at once, after the job was started and recorded.
      `connection: { vcenter: "https://127.0.0.1:9", user: backup, passwordFile: ${path.join(dir, 'vcenter.password')}, insecure: true }`,
      `repository: { path: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} }`,
      'targets: { vms: [web-1] }',
    ].join('\n'));
    config = path.join(dir, 'server.yaml');
    await fs.writeFile(config, [
      'listen: 127.0.0.1:0',
      'stateDir: state',
      `repositories: [ { name: main, repo: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} } ]`,
      `recipes: [ ${recipe} ]`,
    ].join('\n'));
    for (const [name, pw] of Object.entries(PASSWORDS)) await addUser(config, dir, name, name, pw);
    tokens['viewer'] = await createToken(config, 'viewer');
    tokens['operator'] = await createToken(config, 'operator');
    server = await startServer(config);
    ca = await fs.readFile(path.join(dir, 'state/server-cert.pem'), 'utf8');
  });
  after(async () => {
    await server?.stop();
    await cleanup?.();
  });

  const client = (token?: string) => new ApiClient(server.url, ca, token);

  it('answers 401 to requests without a session or token, and to a wrong token', async () => {
    for (const [method, p] of [['GET', '/api/v1/jobs'], ['GET', '/api/v1/overview'], ['GET', '/metrics'], ['POST', '/api/v1/jobs'], ['GET', '/api/v1/audit']]) {
      const r = await client().request(method!, p!, method === 'POST' ? { kind: 'recipe', recipe } : undefined);
      assert.equal(r.status, 401, `${method} ${p}: ${r.text}`);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'unauthenticated');
    }
    assert.equal((await client('vmbkp_not-a-token').request('GET', '/api/v1/jobs')).status, 401);
    const login = await client().request('POST', '/api/v1/session', { user: 'admin', password: 'wrong password' });
    assert.equal(login.status, 401);
    // The API's description is public.
    assert.equal((await client().request('GET', '/api/v1/openapi.json')).status, 200);
  });

  it('refuses a viewer starting a job (403), by session and by token; nothing is started', async () => {
    const viewer = client();
    assert.equal((await viewer.login('viewer', PASSWORDS.viewer)).status, 200);
    const bySession = await viewer.send('POST', '/api/v1/jobs', { kind: 'recipe', recipe });
    assert.equal(bySession.status, 403, bySession.text);
    assert.equal(bySession.json<{ error: { code: string } }>().error.code, 'forbidden');
    const byToken = await client(tokens['viewer']).request('POST', '/api/v1/jobs', { kind: 'recipe', recipe });
    assert.equal(byToken.status, 403, byToken.text);
    assert.equal((await viewer.request('GET', '/api/v1/jobs')).json<Job[]>().filter((j) => j.user === 'viewer').length, 0);
  });

  it('refuses a cookie-authenticated POST without the CSRF token (403 csrf); with it the job starts', async () => {
    const operator = client();
    assert.equal((await operator.login('operator', PASSWORDS.operator)).status, 200);
    const before = (await operator.request('GET', '/api/v1/jobs')).json<Job[]>().length;
    const none = await operator.request('POST', '/api/v1/jobs', { kind: 'recipe', recipe });
    assert.equal(none.status, 403, none.text);
    assert.equal(none.json<{ error: { code: string } }>().error.code, 'csrf');
    const wrong = await operator.request('POST', '/api/v1/jobs', { kind: 'recipe', recipe }, { 'x-csrf-token': 'x'.repeat(operator.csrf!.length) });
    assert.equal(wrong.status, 403, wrong.text);
    assert.equal((await operator.request('GET', '/api/v1/jobs')).json<Job[]>().length, before, 'a refused request started nothing');
    const ok = await operator.send('POST', '/api/v1/jobs', { kind: 'recipe', recipe });
    assert.equal(ok.status, 202, ok.text);
    const { id } = ok.json<{ id: number }>();
    // The recipe's vCenter is a closed port: the job ends failed, its cause recorded.
    const job = await until(async () => {
      const j = (await operator.request('GET', `/api/v1/jobs/${id}`)).json<Job & { error: { message: string } | null }>();
      return j.status === 'running' ? undefined : j;
    });
    assert.equal(job.status, 'failed');
    assert.equal(job.user, 'operator');
    assert.match(job.error!.message, /127\.0\.0\.1:9|ECONNREFUSED|connect/i);
  });

  it('takes an API token without CSRF, and audits who started what', async () => {
    const r = await client(tokens['operator']).request('POST', '/api/v1/jobs', { kind: 'recipe', recipe });
    assert.equal(r.status, 202, r.text);
    const { id } = r.json<{ id: number }>();
    const admin = client();
    assert.equal((await admin.login('admin', PASSWORDS.admin)).status, 200);
    const audit = (await admin.request('GET', '/api/v1/audit')).json<{ user: string | null; method: string; path: string; status: number; summary: string }[]>();
    const started = audit.find((a) => a.summary.startsWith(`started job ${id}:`));
    assert.ok(started, JSON.stringify(audit, null, 1));
    assert.equal(started.user, 'operator');
    assert.equal(started.status, 202);
    assert.match(started.summary, /recipe nightly/);
    // Refused requests are audited too, with whose they were.
    assert.ok(audit.some((a) => a.user === 'viewer' && a.path === '/api/v1/jobs' && a.status === 403));
    assert.ok(audit.some((a) => a.user === 'operator' && a.path === '/api/v1/jobs' && a.status === 403), 'the request without CSRF token');
    // Only admins read it.
    assert.equal((await client(tokens['operator']).request('GET', '/api/v1/audit')).status, 403);
  });

  it('never shows a password, hash or token in any GET answer, to a viewer or an admin, nor in its log', async () => {
    const secrets = [
      ...Object.values(PASSWORDS), VCENTER_PASSWORD, ...Object.values(tokens),
      (await fs.readFile(REPO_PASSWORD_FILE, 'utf8')).trim(), 'scrypt$', 'password_hash', 'token_hash',
    ];
    const viewer = client();
    await viewer.login('viewer', PASSWORDS.viewer);
    const admin = client();
    await admin.login('admin', PASSWORDS.admin);
    const jobs = (await admin.request('GET', '/api/v1/jobs')).json<Job[]>();
    assert.ok(jobs.length >= 2);
    const paths = ['/api/v1/session', '/api/v1/overview', '/api/v1/jobs', '/api/v1/tokens', '/api/v1/users', '/api/v1/audit', '/metrics', '/api/v1/openapi.json',
      ...jobs.flatMap((j) => [`/api/v1/jobs/${j.id}`, `/api/v1/jobs/${j.id}/log`, `/api/v1/jobs/${j.id}/events`])];
    let seen = 0;
    for (const [who, c] of [['viewer', viewer], ['admin', admin]] as const) {
      for (const p of paths) {
        const r = await c.request('GET', p);
        if (r.status === 200) seen++;
        for (const s of secrets) assert.ok(!r.text.includes(s), `GET ${p} as ${who} shows ${JSON.stringify(s)}`);
      }
    }
    assert.ok(seen >= paths.length + 10, 'most answers were read, not refused');
    const { stdout, stderr } = server.output();
    for (const s of secrets) assert.ok(!(stdout + stderr).includes(s), `the server's output shows ${JSON.stringify(s)}`);
  });

  it('prints the SHA-256 fingerprint of the self-signed certificate it serves', async () => {
    const { port, hostname } = new URL(server.url);
    const served = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: hostname, port: Number(port), ca }, () => {
        const fp = s.getPeerCertificate().fingerprint256;
        s.end();
        resolve(fp);
      });
      s.on('error', reject);
    });
    assert.equal(served, server.fingerprint);
    assert.equal(new X509Certificate(ca).fingerprint256, server.fingerprint);
    // The key is the server's alone.
    assert.equal((await fs.stat(path.join(dir, 'state/server-key.pem'))).mode & 0o077, 0);
  });
});
