/**
 * A backup recipe's `copy`: validated with its line like every recipe field; run against
 * the lab after the backups, it copies the generations the other repository lacks (the new
 * ones the next night), its result in the run report and the summary; a copy that fails
 * leaves the backups standing and makes the run a partial failure (exit 3).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { recipeIssues, validateRecipe } from '../src/recipe/index.js';
import { REPO_PASSWORD_FILE, sha256File, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const MiB = 1024 * 1024;

const HEAD = [
  'version: 1',
  'kind: backup',
  'connection: { vcenter: "https://vc.example.com/sdk", user: u, passwordFile: /etc/pw }',
  'repository: /backup/repo',
  'targets: { vms: [web01] }',
];

describe('recipe copy: validation', () => {
  it('copy.to takes a path or a mapping with a password source, and sets', () => {
    for (const copy of [
      'copy: { to: /offsite/repo }',
      'copy: { to: { path: /offsite/repo, passwordFile: /etc/vmbkp/offsite.pass }, sets: [web01, db.01] }',
      'copy:\n  to:\n    path: /offsite/repo\n    passwordCommand: "pass show offsite"',
    ]) {
      const r = validateRecipe([...HEAD, copy].join('\n'));
      assert.ok(r.ok, `${copy}: ${JSON.stringify(!r.ok && r.issues)}`);
      assert.equal(r.recipe.kind === 'backup' && r.recipe.copy?.to.path, '/offsite/repo');
    }
  });

  it('a malformed copy is refused with its line and field', () => {
    const line = HEAD.length + 1;
    const cases: [string, RegExp][] = [
      ['copy: {}', /^copy\.to is required$/],
      ['copy: { to: /x, sets: [] }', /^copy\.sets: /],
      ['copy: { to: /x, sets: ["../x"] }', /^copy\.sets\[0\]: "\.\.\/x" is not a set name/],
      ['copy: { to: /x, retention: 3 }', /retention/],
      ['copy: { to: { path: /x, passwordFile: a, passwordEnv: B } }', /give one of passwordFile, passwordEnv, passwordCommand/],
    ];
    for (const [copy, message] of cases) {
      const issues = recipeIssues([...HEAD, copy].join('\n'));
      assert.equal(issues.length, 1, `${copy}: ${JSON.stringify(issues)}`);
      assert.equal(issues[0]!.line, line, copy);
      assert.match(issues[0]!.message, message, copy);
    }
  });
});

interface CopyOutcome {
  to: string; sets: string[]; ok: boolean;
  report?: { copied: number; present: number; generations: { set: string; from: number; to: number; status: string }[]; bytesSent: number };
  error?: { code: string; message: string };
}
interface Report { ok: boolean; vms: { vm: string; set: string; ok: boolean; generation?: number }[]; copy?: CopyOutcome }

describe('recipe copy: run against the lab', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let offsite: string;
  let pw: string;
  let n = 0;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '2', '--disks', '1', '--disk-size', String(16 * MiB)]);
    repo = path.join(dir, 'repo');
    offsite = path.join(dir, 'offsite');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    assert.equal((await vmbkp(['init', '--repo', offsite])).code, 0);
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  async function runRecipe(copy: string): Promise<{ code: number | null; stdout: string; stderr: string; report: Report }> {
    n++;
    const file = path.join(dir, `recipe-${n}.yaml`);
    const reportFile = path.join(dir, `report-${n}.json`);
    await fs.writeFile(file, [
      'version: 1',
      'kind: backup',
      'connection:',
      `  vcenter: ${lab.info.url}`,
      `  user: ${lab.info.user}`,
      `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`,
      `repository: ${repo}`,
      'targets: { vms: ["lab-vm-*"] }',
      `report: { json: ${reportFile} }`,
      copy,
    ].join('\n'));
    const r = await vmbkp(['run', file]);
    return { ...r, report: JSON.parse(await fs.readFile(reportFile, 'utf8')) as Report };
  }

  async function restoredSha(from: string, set: string, generation: number): Promise<string> {
    const out = path.join(dir, 'restored.img');
    const r = await vmbkp(['restore', '--repo', from, '--set', set, '--generation', String(generation), '--disk', '2000', '--to', `file:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    const sha = await sha256File(out);
    await fs.rm(out);
    return sha;
  }

  it('copies the generations the other repository lacks after the backups; the next run only the new ones', async () => {
    const copy = `copy: { to: { path: ${offsite}, passwordFile: ${REPO_PASSWORD_FILE} } }`;
    const first = await runRecipe(copy);
    assert.equal(first.code, 0, first.stderr);
    const c1 = first.report.copy!;
    assert.equal(c1.ok, true, JSON.stringify(c1));
    assert.deepEqual(c1.sets, ['lab-vm-1', 'lab-vm-2']);
    assert.deepEqual(c1.report!.generations.map((g) => [g.set, g.from, g.to, g.status]), [['lab-vm-1', 1, 1, 'copied'], ['lab-vm-2', 1, 1, 'copied']]);
    assert.match(first.stdout, new RegExp(`^copy to ${offsite}: copied 2 generations of 2 sets \\(0 skipped, already there\\): \\S+ \\S+ read, \\S+ \\S+ sent$`, 'm'));

    await lab.write('lab-vm-1', 2000, 4 * MiB, Buffer.alloc(MiB, 7));
    const second = await runRecipe(copy);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(second.report.copy!.report!.generations.map((g) => [g.set, g.from, g.to, g.status]),
      [['lab-vm-1', 1, 1, 'present'], ['lab-vm-1', 2, 2, 'copied'], ['lab-vm-2', 1, 1, 'present'], ['lab-vm-2', 2, 2, 'copied']]);
    for (const [set, g] of [['lab-vm-1', 2], ['lab-vm-2', 2], ['lab-vm-1', 1]] as const) {
      assert.equal(await restoredSha(offsite, set, g), await restoredSha(repo, set, g), `${set} generation ${g} restores alike from both`);
    }
    const v = await vmbkp(['verify', '--repo', offsite, '--read-data']);
    assert.equal(v.code, 0, v.stderr);
  });

  it('copy.sets limits the copy; a copy that fails is a partial failure (exit 3), the backups stand', async () => {
    const only = await runRecipe(`copy: { to: ${offsite}, sets: [lab-vm-2] }`);
    assert.equal(only.code, 0, only.stderr);
    assert.deepEqual(only.report.copy!.report!.generations.map((g) => [g.set, g.status]), [['lab-vm-2', 'present'], ['lab-vm-2', 'present'], ['lab-vm-2', 'copied']]);

    const missing = path.join(dir, 'no-such-repo');
    const failed = await runRecipe(`copy: { to: ${missing} }`);
    assert.equal(failed.code, 3, failed.stderr);
    assert.ok(failed.report.vms.every((v) => v.ok), 'every VM was backed up');
    assert.equal(failed.report.copy!.ok, false);
    assert.equal(failed.report.copy!.error!.code, 'REPO_NOT_FOUND');
    assert.match(failed.stderr, new RegExp(`^vmbkp: warning: the copy to ${missing} failed: no vmbkp repository at ${missing}`, 'm'));
    const last = failed.stderr.trim().split('\n').pop()!;
    assert.match(last, new RegExp(`^vmbkp: error: recipe \\S+: every VM was backed up, but the copy to ${missing} failed \\(no vmbkp repository at`));
    assert.match(failed.stdout, new RegExp(`^copy to ${missing} failed: no vmbkp repository`, 'm'));
    await assert.rejects(fs.stat(missing), 'nothing was created');
  });

  it('--dry-run names the copy and copies nothing', async () => {
    n++;
    const file = path.join(dir, `recipe-${n}.yaml`);
    await fs.writeFile(file, [
      'version: 1', 'kind: backup', 'connection:', `  vcenter: ${lab.info.url}`, `  user: ${lab.info.user}`, `  passwordFile: ${pw}`,
      `  thumbprint: "${lab.info.thumbprintSha256}"`, `repository: ${repo}`, 'targets: { vms: ["lab-vm-1"] }', `copy: { to: ${offsite} }`,
    ].join('\n'));
    const before = await fs.readdir(path.join(offsite, 'generations'), { recursive: true });
    const r = await vmbkp(['run', file, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^then copy to ${offsite} the generations it lacks of the sets backed up$`, 'm'));
    const json = await vmbkp(['run', file, '--dry-run', '--json']);
    assert.deepEqual((JSON.parse(json.stdout) as { copy: unknown }).copy, { to: offsite, sets: null });
    assert.deepEqual(await fs.readdir(path.join(offsite, 'generations'), { recursive: true }), before);
    assert.equal(r.stderr, '');
  });
});
