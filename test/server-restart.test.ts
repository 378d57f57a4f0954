/**
 * `vmbkp server` across restarts, against the lab: the job history survives; a job that
 * was running when the server was killed (SIGKILL: no chance to clean up) is shown as
 * 'interrupted'; a schedule does not start a second run while one runs (that due time is
 * recorded 'missed'); due times that passed while the server was down are reported as a
 * 'missed' job, not run late, and the webhook (a real HTTP server here) receives it.
 *
 * The schedule fires every second (6-field cron) so that the test takes seconds; the lab's
 * folder gate holds a run's disk reads for as long as the test needs it running.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';
import { ApiClient, type StartedServer, addUser, createToken, startServer, startWebhook, until } from './server-fixture.js';

const MiB = 1024 * 1024;

interface Job { id: number; status: string; trigger: string; name: string; startedAt: string | null; scheduledFor: string | null; error: { code: string; message: string } | null }
interface Alert { event: string; text: string; job: Job }

describe('vmbkp server: restarts, interrupted jobs, missed schedules', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let lab: Lab;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  let config: string;
  let token: string;
  let ca: string;
  let cancelRecipe: string;
  let api: ApiClient;
  const servers: StartedServer[] = [];

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-server-restart-'));
    lab = await Lab.start(['--vms', '2', '--disks', '1', '--disk-size', String(16 * MiB)]);
    webhook = await startWebhook();
    const repo = path.join(dir, 'repo');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    const pw = await lab.passwordFile(dir);
    const recipe = path.join(dir, 'often.yaml');
    await fs.writeFile(recipe, [
      'version: 1', 'kind: backup',
      `connection: { vcenter: "${lab.info.url}", user: ${lab.info.user}, passwordFile: ${pw}, thumbprint: "${lab.info.thumbprintSha256}" }`,
      `repository: { path: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} }`,
      'targets: { vms: [lab-vm-1] }',
    ].join('\n'));
    // Run on demand only, for the cancel: another VM, so the schedule's runs never touch it.
    cancelRecipe = path.join(dir, 'vm2.yaml');
    await fs.writeFile(cancelRecipe, (await fs.readFile(recipe, 'utf8')).replace('[lab-vm-1]', '[lab-vm-2]'));
    config = path.join(dir, 'server.yaml');
    await fs.writeFile(config, [
      'listen: 127.0.0.1:0',
      'stateDir: state',
      `repositories: [ { name: main, repo: ${repo}, passwordFile: ${REPO_PASSWORD_FILE} } ]`,
      `schedules: [ { name: often, recipe: ${recipe}, cron: "* * * * * *", timezone: Europe/Berlin } ]`,
      `recipes: [ ${cancelRecipe} ]`,
      `alerts: { webhook: "${webhook.url}" }`,
    ].join('\n'));
    await addUser(config, dir, 'admin', 'admin', 'admin-secret-1');
    token = await createToken(config, 'admin');
  });
  after(async () => {
    for (const s of servers) await s.stop('SIGKILL');
    await lab?.ungateFolder().catch(() => {});
    await lab?.stop();
    await webhook?.stop();
    await cleanup?.();
  });

  async function start(): Promise<ApiClient> {
    const s = await startServer(config);
    servers.push(s);
    ca ??= await fs.readFile(path.join(dir, 'state/server-cert.pem'), 'utf8');
    return new ApiClient(s.url, ca, token);
  }
  const jobs = async (api: ApiClient) => (await api.request('GET', '/api/v1/jobs?limit=1000')).json<Job[]>();

  // The limits only turn a hang (a run that never ends) into a failure; nothing is timed.
  it('keeps the history, marks the killed job interrupted and reports the runs missed while down', { timeout: 600_000 }, async () => {
    // 1. A scheduled run succeeds; then a clean stop.
    api = await start();
    const first = await until(async () => (await jobs(api)).find((j) => j.trigger === 'schedule' && j.status === 'succeeded'));
    // The set's run shows in /metrics and the overview, under the repository's configured name.
    const metrics = (await api.request('GET', '/metrics')).text;
    assert.match(metrics, /^vmbkp_set_last_success_timestamp_seconds\{repository="main",set="lab-vm-1"\} \d+(\.\d+)?$/m);
    assert.match(metrics, /^vmbkp_job_runs_total\{status="succeeded"\} [1-9]/m);
    const overview = (await api.request('GET', '/api/v1/overview')).json<{ sets: { repository: string; set: string; lastSuccessAt: string | null; lastGeneration: { id: number; mode: string | null } | null }[]; schedules: { name: string; nextRunAt: string }[] }>();
    const row = overview.sets.find((x) => x.repository === 'main' && x.set === 'lab-vm-1');
    assert.ok(row && row.lastSuccessAt !== null, JSON.stringify(overview));
    // The newest generation with the mode it was made in (the first of a set is a full).
    assert.ok(row.lastGeneration && row.lastGeneration.id >= 1 && /^(full|incr|diff)(\+(full|incr|diff))*$/.test(row.lastGeneration.mode ?? ''), JSON.stringify(row));
    assert.equal(overview.schedules[0]?.name, 'often');
    await servers[0]!.stop('SIGTERM');

    // 2. With the lab holding disk reads, the next run stays running: the schedule, due
    //    every second, records its due times as missed instead of starting a second run.
    await lab.gateFolder(5, 600_000);
    api = await start();
    const held = await until(async () => (await jobs(api)).find((j) => j.id > first.id && j.trigger === 'schedule' && j.status === 'running'));
    const overlap = await until(async () => {
      const all = await jobs(api);
      assert.deepEqual(all.filter((j) => j.status === 'running').map((j) => j.id), [held.id], 'one run at a time');
      return all.find((j) => j.id > held.id && j.status === 'missed');
    });
    assert.match(overlap.error!.message, new RegExp(`previous run \\(job ${held.id}\\) was still running`));

    // 3. Killed: nothing gets to record how the held job ended.
    await servers[1]!.stop('SIGKILL');
    const killedAt = Date.now();
    // Down for over a second: at least one due time of the schedule passes.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 1500 - Date.now())));
    await lab.ungateFolder();

    // 4. Restarted: the history is there, the held job interrupted, the downtime's due times missed.
    api = await start();
    const after = await jobs(api);
    assert.equal(after.find((j) => j.id === first.id)?.status, 'succeeded');
    assert.equal(after.find((j) => j.id === overlap.id)?.status, 'missed');
    const interrupted = after.find((j) => j.id === held.id)!;
    assert.equal(interrupted.status, 'interrupted');
    assert.equal(interrupted.error?.code, 'INTERRUPTED');
    const down = after.find((j) => j.id > overlap.id && j.status === 'missed' && /while the server was down/.test(j.error?.message ?? ''));
    assert.ok(down, JSON.stringify(after.filter((j) => j.id > held.id), null, 1));
    assert.equal(down.trigger, 'missed');
    assert.equal(down.name, 'often');
    // Not run late: its due time is before the restart, and nothing was started for it.
    assert.ok(Date.parse(down.scheduledFor!) >= killedAt - 1000);
    const detail = (await api.request('GET', `/api/v1/jobs/${down.id}`)).json<Job & { startedAt: string | null }>();
    assert.equal(detail.startedAt, null);

    // 5. The webhook was told: the missed runs, and the interrupted job (a clean stop
    //    delivers the alerts still under way, so they are all in by then).
    await servers[2]!.stop('SIGTERM');
    const alerts = webhook.received as Alert[];
    const missedAlert = alerts.find((b) => b.event === 'job.missed' && b.job.id === down.id);
    assert.ok(missedAlert, JSON.stringify(alerts.map((a) => a.text), null, 1));
    assert.match(missedAlert.text, /while the server was down/);
    const interruptedAlert = alerts.find((b) => b.event === 'job.interrupted' && b.job.id === held.id);
    assert.equal(interruptedAlert?.job.status, 'interrupted');
    api = await start();
  });

  it('cancels a running job: its VM\'s backup stops, cleans up, and the job ends cancelled', { timeout: 300_000 }, async () => {
    // Held at its first disk read, the job cannot end before the cancel reaches it.
    await lab.gateFolder(5, 600_000);
    const r = await api.request('POST', '/api/v1/jobs', { kind: 'recipe', recipe: cancelRecipe });
    assert.equal(r.status, 202, r.text);
    const { id } = r.json<{ id: number }>();
    // Its snapshot made, its reads are next: the cancel meets the backup mid-way.
    await until(async () => ((await lab.vmbkpSnapshots('lab-vm-2')).length > 0 ? true : undefined));
    // Live events from here to the job's end (the stream ends with it).
    const stream = api.events(`/api/v1/jobs/${id}/events`);
    const c = await api.request('POST', `/api/v1/jobs/${id}/cancel`);
    assert.equal(c.status, 202, c.text);
    await lab.ungateFolder();
    const job = await until(async () => {
      const j = (await api.request('GET', `/api/v1/jobs/${id}`)).json<Job & { vms: { name: string; status: string; error: { code: string; message: string } | null }[] }>();
      return j.status === 'running' ? undefined : j;
    });
    assert.equal(job.status, 'cancelled', JSON.stringify(job));
    assert.equal(job.vms[0]?.name, 'lab-vm-2');
    assert.equal(job.vms[0]?.error?.code, 'CANCELLED');
    // Stopped in its read, not before it started.
    assert.match(job.vms[0]!.error!.message, /stopped: the run was cancelled/);
    assert.deepEqual(await lab.vmbkpSnapshots('lab-vm-2'), [], 'the cancelled backup removed its snapshot');
    assert.equal((await api.request('POST', `/api/v1/jobs/${id}/cancel`)).status, 409, 'an ended job cannot be cancelled');
    const events = await stream;
    assert.equal(events.at(-1)?.event, 'end');
    assert.equal((events.at(-1)!.data as Job).status, 'cancelled');
    assert.ok(events.some((e) => e.event === 'log' && /VM lab-vm-2: backup failed: .*cancelled/.test((e.data as { message: string }).message)),
      JSON.stringify(events, null, 1));
  });
});
