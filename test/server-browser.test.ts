/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core) against the real
 * server process and the vSphere lab: ONE server whose recipe runs every minute, ONE browser.
 * While the schedule runs: log in, see the VMs after the first scheduled run, open a VM's
 * generations, start a backup from the UI and watch it finish live, restore a disk to a file
 * (sha256 = the lab disk's), see a failed VM (lab fault) with its cause. Then the acceptance:
 * two successful scheduled runs in the API, on the overview, and the set's last-success metric.
 * Screenshots of the main pages go to test-results/screenshots/ (or VMBKP_SCREENSHOTS).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { CLI, REPO_PASSWORD_FILE, ROOT, sha256File, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve(process.env['VMBKP_SCREENSHOTS'] || path.join(ROOT, 'test-results/screenshots'));
/** Upper bounds so a broken server cannot hang CI; waits end as soon as the page shows the state. */
const LONG = 240_000;

interface JobSummary {
  id: string; kind: string; name: string; trigger: string; status: string; scheduledFor: string | null;
  error: string | null; vms: { name: string; set: string; status: string; error: string | null }[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('dashboard in chromium against the server and the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: ChildProcess | undefined;
  let serverOutput = '';
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  const mutating: { method: string; url: string; csrf: string | undefined }[] = [];
  const cspViolations: string[] = [];

  before(async () => {
    // No silent skip: a machine without Debian's chromium fails here, saying what to do.
    await fs.access(CHROMIUM).catch(() => {
      throw new Error(`${CHROMIUM} is missing: run ./setup.sh (it installs Debian's chromium for the browser tests)`);
    });
    ({ dir, cleanup } = await tempDir('vmbkp-browser-'));
    lab = await Lab.start(['--vms', '2', '--disks', '1', '--disk-size', '8M']);
    const pw = await lab.passwordFile(dir);
    const repo = path.join(dir, 'repo');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    const recipe = async (name: string, vm: string): Promise<string> => {
      const file = path.join(dir, `${name}.yaml`);
      await fs.writeFile(file, [
        'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`,
        `  passwordFile: ${pw}`, `  thumbprint: "${lab.info.thumbprintSha256}"`,
        'repository:', `  path: ${repo}`, `  passwordFile: ${REPO_PASSWORD_FILE}`,
        'targets:', `  vms: ["${vm}"]`, 'policy:', '  enableCbt: true', '',
      ].join('\n'));
      return file;
    };
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    // The vmbkp config file the server names (config:): the vCenter profile a VM restore names.
    const vmbkpConfig = path.join(dir, 'vmbkp.yaml');
    await fs.writeFile(vmbkpConfig, [
      'vcenters:', '  lab:', `    url: ${lab.info.url}`, `    user: ${lab.info.user}`, `    passwordFile: ${pw}`,
      `    thumbprint: ${lab.info.thumbprintSha256}`, '',
    ].join('\n'));
    const config = path.join(dir, 'server.yaml');
    // The every-minute schedule backs up lab-vm-1; lab-vm-2's schedule (yearly) is what the UI runs now.
    await fs.writeFile(config, [
      `listen: "127.0.0.1:${port}"`,
      `stateDir: ${path.join(dir, 'state')}`,
      `config: ${vmbkpConfig}`,
      'repositories:', `  - { name: main, repo: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} }`,
      'schedules:',
      `  - { name: every-minute, recipe: ${await recipe('every-minute', 'lab-vm-1')}, cron: "* * * * *", timezone: UTC }`,
      `  - { name: vm-2, recipe: ${await recipe('vm-2', 'lab-vm-2')}, cron: "0 0 1 1 *", timezone: UTC }`,
      '',
    ].join('\n'));
    const adminPw = path.join(dir, 'admin.password');
    await fs.writeFile(adminPw, 'correct horse battery staple\n', { mode: 0o600 });
    const add = await vmbkp(['server', 'user', 'add', 'admin', '--role', 'admin', '--password-file', adminPw, '--config', config]);
    assert.equal(add.code, 0, add.stderr);

    server = spawn(process.execPath, [CLI, 'server', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => { serverOutput = (serverOutput + d).slice(-20_000); });
    server.stderr!.on('data', (d) => { serverOutput = (serverOutput + d).slice(-20_000); });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    // The server's certificate is the self-signed one it generated (its fingerprint is in its output).
    context = await browser.newContext({ baseURL: base, ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } });
    page = await context.newPage();
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/') && r.method() !== 'GET') mutating.push({ method: r.method(), url: r.url(), csrf: r.headers()['x-csrf-token'] });
    });
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });
    // The server is up when it answers; its exit meanwhile fails the suite with what it said.
    for (;;) {
      if (server.exitCode !== null) throw new Error(`vmbkp server exited (${server.exitCode}):\n${serverOutput}`);
      const ok = await context.request.get('/api/v1/openapi.json').then((r) => r.ok(), () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await fs.mkdir(SHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    await lab?.stop();
    await cleanup?.();
  });

  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  const jobs = async (): Promise<JobSummary[]> => {
    const r = await context.request.get('/api/v1/jobs?limit=50');
    assert.equal(r.status(), 200, await r.text());
    return (await r.json()) as JobSummary[];
  };
  const jobStatus = (s: string) => page.locator(`#job-summary [data-status="${s}"]`);

  it('serves the dashboard with a strict CSP, correct types, and nothing outside its files', async (t) => {
    t.diagnostic(`screenshots: ${SHOTS}`);
    const index = await context.request.get('/');
    assert.equal(index.status(), 200);
    assert.match(index.headers()['content-type'] ?? '', /^text\/html/);
    const csp = index.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match((await context.request.get('/assets/js/main.js')).headers()['content-type'] ?? '', /^text\/javascript/);
    assert.match((await context.request.get('/assets/app.css')).headers()['content-type'] ?? '', /^text\/css/);
    assert.match((await context.request.get('/assets/vendor/chart.umd.js')).headers()['content-type'] ?? '', /^text\/javascript/);
    // Encoded slashes survive URL normalisation: a server that decoded and joined them would
    // reach the repository's package.json (three levels above src/server/web).
    for (const p of ['/assets/..%2f..%2f..%2fpackage.json', '/assets/js/..%2F..%2F..%2F..%2Fpackage.json', '/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json', '/assets/index.html']) {
      const r = await context.request.get(p);
      assert.equal(r.status(), 404, `${p} must not be served`);
    }
  });

  it('logs in, and the overview lists the VM after the first scheduled run', async () => {
    await page.goto('/');
    await page.locator('form.login').waitFor();
    await shot('login');
    await page.fill('input[name=user]', 'admin');
    await page.fill('input[name=password]', 'wrong');
    await page.click('button[type=submit]');
    await page.locator('form.login [role=alert]').waitFor();
    await page.fill('input[name=password]', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.locator('h1', { hasText: 'Overview' }).waitFor();
    await page.locator('#sets tr[data-set="lab-vm-1"]').waitFor({ timeout: LONG });
    await page.locator('#sets tr[data-set="lab-vm-1"] [data-status="succeeded"]').waitFor({ timeout: LONG });
  });

  it("opens the VM's generations: timeline chart and the generations table", async () => {
    await page.click('#sets tr[data-set="lab-vm-1"] a');
    await page.locator('#generations tr[data-generation="1"]').waitFor();
    const row = await page.locator('#generations tr[data-generation="1"]').innerText();
    assert.match(row, /full/, row);
    assert.match(row, /crash|quiesced|powered-off/, row);
    assert.equal(await page.locator('canvas#timeline').count(), 1);
    await shot('vm');
  });

  it('starts a backup from the UI and watches it finish live', async () => {
    // Hold the VM's disk read at the lab so the page is seen running before it ends.
    await lab.gateFolder(2, LONG);
    try {
      await page.goto('/#/');
      await page.locator('#schedules tr[data-schedule="vm-2"] button', { hasText: 'Run now' }).click();
      await page.waitForURL(/#\/job\//);
      await jobStatus('running').waitFor({ timeout: LONG });
      await shot('job-running');
    } finally {
      await lab.ungateFolder();
    }
    // No reload: the stream's end event turns the same page to succeeded.
    await jobStatus('succeeded').waitFor({ timeout: LONG });
    assert.equal(await page.locator('#progress').getAttribute('data-ended-live'), 'true');
    assert.match(await page.locator('#job-vms tr[data-vm="lab-vm-2"]').innerText(), /succeeded/);
    assert.ok((await page.locator('#job-log > div').count()) > 0, 'the job log shows lines');
    await shot('job');
  });

  it('restores a disk to a file from the UI after a preview; its sha256 is the lab disk\'s', async () => {
    const target = path.join(dir, 'restored-2000.img');
    await page.goto('/#/set/main/lab-vm-1');
    await page.locator('#generations tr[data-generation="1"] a', { hasText: 'Restore' }).click();
    await page.locator('#restore-form input[name=to]').fill(target);
    assert.equal(await page.locator('#confirm').isDisabled(), true, 'no restore before a preview');
    await page.click('#preview');
    await page.locator('#preview-box').waitFor();
    await shot('restore-preview');
    const preview = await page.locator('#preview-box').innerText();
    assert.match(preview, /2000/, preview);
    await fs.access(target).then(() => assert.fail('the preview wrote the target'), () => {});
    await page.click('#confirm');
    await page.waitForURL(/#\/job\//);
    await jobStatus('succeeded').waitFor({ timeout: LONG });
    assert.equal(await sha256File(target), await lab.sha256('lab-vm-1', 2000));
  });

  it('restores the VM as a new VM from the UI after a preview; the new VM\'s disk has the generation\'s sha256', async () => {
    await page.goto('/#/set/main/lab-vm-1');
    await page.locator('#generations tr[data-generation="1"] a', { hasText: 'Restore' }).click();
    await page.click('button[data-flow="vm"]');
    await page.locator('#restore-form input[name=vcenter]').fill('lab');
    await page.locator('#restore-form input[name=name]').fill('lab-vm-1-restored');
    assert.equal(await page.locator('#confirm').isDisabled(), true, 'no restore before a preview');
    await page.click('#preview');
    await page.locator('#preview-box').waitFor();
    const preview = await page.locator('#preview-box').innerText();
    assert.match(preview, /lab-vm-1-restored/, preview);
    assert.ok(!(await lab.vms()).some((v) => v.name === 'lab-vm-1-restored'), 'the preview made no VM');
    await page.click('#confirm');
    await page.waitForURL(/#\/job\//);
    await jobStatus('succeeded').waitFor({ timeout: LONG });
    assert.equal(await lab.sha256('lab-vm-1-restored', 2000), await lab.sha256('lab-vm-1', 2000));
  });

  it('reports a failed VM (lab snapshot fault) with its cause, failures first on the overview', async () => {
    await lab.fault('create-snapshot', { vm: 'lab-vm-2' });
    await page.goto('/#/');
    await page.locator('#schedules tr[data-schedule="vm-2"] button', { hasText: 'Run now' }).click();
    await page.waitForURL(/#\/job\//);
    await jobStatus('failed').waitFor({ timeout: LONG });
    const vmRow = await page.locator('#job-vms tr[data-vm="lab-vm-2"]').innerText();
    assert.match(vmRow, /failed/);
    assert.match(vmRow, /creating snapshot vmbkp-\S+ of VM lab-vm-2 failed/, vmRow);
    await page.goto('/#/');
    const first = page.locator('#sets tbody tr').first();
    await page.locator('#sets tr[data-set="lab-vm-2"] [data-status="failed"]').waitFor({ timeout: LONG });
    assert.equal(await first.getAttribute('data-set'), 'lab-vm-2', 'failures first');
    assert.match(await first.innerText(), /creating snapshot vmbkp-\S+ of VM lab-vm-2 failed/);
  });

  it('acceptance: two successful scheduled runs in the API and on the overview; the set\'s last success in /metrics', async () => {
    let scheduled: JobSummary[] = [];
    for (;;) {
      scheduled = (await jobs()).filter((j) => j.trigger === 'schedule' && j.name === 'every-minute' && j.status === 'succeeded');
      if (scheduled.length >= 2) break;
      assert.equal(server!.exitCode, null, `the server exited:\n${serverOutput}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    // Two runs of one cron line a minute apart (their scheduled times, not how long anything took).
    const times = scheduled.map((j) => Date.parse(j.scheduledFor ?? '')).sort((a, b) => a - b);
    assert.ok(times.every((x) => Number.isFinite(x)), 'scheduled runs carry their scheduled time');
    assert.equal((times.at(-1)! - times.at(-2)!) % 60_000, 0);
    await page.goto('/#/');
    for (const j of scheduled.slice(0, 2)) {
      await page.locator(`#recent tr[data-job="${j.id}"] [data-status="succeeded"]`).waitFor({ timeout: LONG });
    }
    await shot('overview');
    await page.screenshot({ path: path.join(SHOTS, 'overview-full.png'), fullPage: true });
    const metrics = await context.request.get('/metrics');
    assert.equal(metrics.status(), 200);
    const m = /^vmbkp_set_last_success_timestamp_seconds\{[^}]*set="lab-vm-1"[^}]*\} (\d+(\.\d+)?)$/m.exec(await metrics.text());
    assert.ok(m, 'metrics carry lab-vm-1\'s last success');
    assert.ok(Number(m[1]) * 1000 >= times.at(-1)!, 'the last success is no older than the last scheduled run');
  });

  it('sent the CSRF token on every mutating request, and the page broke no CSP rule', () => {
    const needing = mutating.filter((r) => !(r.method === 'POST' && r.url.endsWith('/api/v1/session')));
    assert.ok(needing.length >= 4, `mutating requests seen: ${JSON.stringify(mutating)}`);
    for (const r of needing) assert.ok(r.csrf && r.csrf.length > 0, `${r.method} ${r.url} without X-CSRF-Token`);
    assert.deepEqual(cspViolations, []);
  });
});
