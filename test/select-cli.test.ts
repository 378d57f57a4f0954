/**
 * Generation selectors through the real CLI, on a set of three file: backups (each of other
 * content): restore by latest~1, by a local date-time under a given TZ, by the same instant
 * with an explicit zone, by a bare date, by an id prefix; copy by latest~1 on every set; an
 * empty selection and a per-set selector without --set refused in one line. Every child gets
 * TZ explicitly, so nothing depends on this machine's zone.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, makeImage, oneLine, sha256File, tempDir, vmbkp, vmbkpJson } from './helpers.js';

interface ListJson { sets: { name: string; generations: { generation: number; id: string; started: string; disks: { name: string; label?: string; bus?: string }[] }[] }[] }

/** A zone with a half-hour offset and no daylight saving: local and UTC times differ in the minutes too. */
const TZ = 'Asia/Kolkata';

/** `iso` as a wall-clock date and time in `timeZone`: ["2026-11-20", "19:30:05"]. */
function wallClock(iso: string, timeZone: string): [string, string] {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return [`${parts['year']}-${parts['month']}-${parts['day']}`, `${parts['hour']}:${parts['minute']}:${parts['second']}`];
}

describe('generation selectors through the CLI', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let gens: ListJson['sets'][number]['generations'];
  /** sha256 of the disk as generation n (1-based) stored it. */
  const digests: string[] = [];
  const env = { TZ };

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    const image = path.join(dir, 'disk.img');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    for (const seed of [11, 12, 13]) {
      await makeImage(image, '4M', seed);
      digests.push(await sha256File(image));
      const b = await vmbkp(['backup', '--repo', repo, '--set', 'vm', `sda=file:${image}`], { env });
      assert.equal(b.code, 0, b.stderr);
      // The next generation starts in a later second, so a time given to the second falls between two.
      const next = Math.floor(Date.now() / 1000 + 1) * 1000;
      await new Promise((r) => setTimeout(r, next - Date.now() + 20));
    }
    gens = (await vmbkpJson<ListJson>(['list', '--repo', repo], env)).sets[0]!.generations;
    assert.deepEqual(gens.map((g) => g.generation), [1, 2, 3]);
  });
  after(async () => { await cleanup?.(); });

  /** Restores disk sda of the generation `selector` picks; returns the content's digest. */
  async function restored(selector: string, tz = TZ): Promise<string> {
    const out = path.join(dir, `r-${Math.random().toString(16).slice(2)}.img`);
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', selector, '--disk', 'sda', '--to', `file:${out}`], { env: { TZ: tz } });
    assert.equal(r.code, 0, `${selector}: ${r.stderr}`);
    const digest = await sha256File(out);
    await fs.rm(out);
    return digest;
  }

  it('plain disk-image sets keep their names: list shows no label or bus', () => {
    assert.deepEqual(gens[0]!.disks.map((d) => [d.name, d.label, d.bus]), [['sda', undefined, undefined]]);
  });

  it('a number, latest and latest~1', async () => {
    assert.equal(await restored('1'), digests[0]);
    assert.equal(await restored('latest'), digests[2]);
    assert.equal(await restored('latest~1'), digests[1]);
  });

  it('a local date-time (in TZ), the same instant with its zone under another TZ, and a bare date', async () => {
    const [day, time] = wallClock(gens[1]!.started, TZ);
    // The second generation 2 started in: it, not generation 3 (a later second), nor 1.
    assert.equal(await restored(`${day}T${time}`), digests[1]);
    assert.equal(await restored(`${day} ${time}`), digests[1]);
    assert.equal(await restored(`${day}T${time}+05:30`, 'America/New_York'), digests[1]);
    const [utcDay, utcTime] = wallClock(gens[1]!.started, 'UTC');
    assert.equal(await restored(`${utcDay}T${utcTime}Z`, 'Pacific/Auckland'), digests[1]);
    // The day generation 3 started, locally: the newest of that day is generation 3.
    assert.equal(await restored(wallClock(gens[2]!.started, TZ)[0]), digests[2]);
  });

  it('an id prefix', async () => {
    assert.equal(await restored(gens[0]!.id.slice(0, 8)), digests[0]);
    assert.equal(await restored(gens[2]!.id.slice(0, 13).toUpperCase()), digests[2]);
  });

  it('a date before the first generation: exit 2, one line listing the generations', async () => {
    const first = new Date(Date.parse(gens[0]!.started) - 2 * 86_400_000).toISOString();
    const day = wallClock(first, TZ)[0];
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', day, '--disk', 'sda', '--to', `file:${path.join(dir, 'never.img')}`], { env });
    assert.equal(r.code, 2);
    const ids = gens.map((g) => `${g.generation} \\(${g.id.slice(0, 8)}, `).join('.*');
    assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: set vm has no generation started at or before ${day} \\(the end of that day\\), .*\\(its generations: ${ids}`));
    const b = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', 'latest~3', '--disk', 'sda', '--to', `file:${path.join(dir, 'never.img')}`], { env });
    assert.equal(b.code, 2);
    assert.match(oneLine(b.stderr), /^vmbkp: error: set vm has no generation latest~3: it has 3 \(its generations: 1 /);
    await assert.rejects(fs.access(path.join(dir, 'never.img')));
  });

  it('an invalid selector says what is accepted', async () => {
    const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm', '--generation', 'yesterday', '--disk', 'sda', '--to', `file:${path.join(dir, 'never.img')}`], { env });
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /^vmbkp: error: generation "yesterday" is invalid: give a number, latest, latest~N, a date or date-time/);
  });

  it('copy --generation latest~1 picks in each set; an id prefix needs one --set', async () => {
    const target = path.join(dir, 'copy');
    assert.equal((await vmbkp(['init', '--repo', target])).code, 0);
    const copyEnv = { ...env, VMBKP_FROM_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE };
    const r = await vmbkp(['copy', '--from-repo', repo, '--repo', target, '--generation', 'latest~1'], { env: copyEnv });
    assert.equal(r.code, 0, r.stderr);
    const copied = (await vmbkpJson<ListJson>(['list', '--repo', target], env)).sets[0]!.generations;
    assert.deepEqual(copied.map((g) => g.id), [gens[1]!.id]);
    const refused = await vmbkp(['copy', '--from-repo', repo, '--repo', target, '--generation', gens[0]!.id.slice(0, 6)], { env: copyEnv });
    assert.equal(refused.code, 2);
    assert.match(oneLine(refused.stderr), /^vmbkp: error: --generation \S+ needs exactly one --set \(numbers and ids differ between sets\)/);
  });
});
