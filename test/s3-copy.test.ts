/**
 * Off-site copies through S3: a local repository copied to a repository on a real S3 server
 * (Ceph RGW) and from there to a second local one restores identical disks and verifies; a
 * second copy sends no chunk data; a copy to S3 killed half-way completes when run again,
 * each generation once.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, makeImage, mutateImage, sha256File, startVmbkp, tempDir, vmbkp, vmbkpJson } from './helpers.js';
import { type S3Server, startS3 } from './s3-server.js';

const FROM = { VMBKP_FROM_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE };

interface CopyJson { copied: number; present: number; chunksSent: number; bytesSent: number; chunksRead: number }
interface ListJson { sets: { name: string; generations: { generation: number; id: string }[] }[] }

describe('copy through S3 (Ceph RGW)', () => {
  let s3: S3Server;
  let dir: string;
  let cleanup: () => Promise<void>;
  const img = (n: number) => path.join(dir, `gen${n}.img`);
  const local = (name: string) => path.join(dir, name);
  let remote: string;

  async function copy(from: string, to: string, env: NodeJS.ProcessEnv = {}): Promise<CopyJson> {
    const r = await vmbkp(['copy', '--from-repo', from, '--repo', to, '--json'], { env: { ...FROM, ...env } });
    assert.equal(r.code, 0, `copy ${from} → ${to}: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as CopyJson;
  }

  async function ids(repo: string): Promise<string[]> {
    return (await vmbkpJson<ListJson>(['list', '--repo', repo])).sets.find((s) => s.name === 'vm1')?.generations.map((g) => g.id) ?? [];
  }

  async function assertRestores(repo: string, generations: number): Promise<void> {
    for (let n = 1; n <= generations; n++) {
      const out = path.join(dir, `restored-${n}.img`);
      const r = await vmbkp(['restore', '--repo', repo, '--set', 'vm1', '--generation', String(n), '--disk', 'sda', '--to', `file:${out}`, '--overwrite']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(out), await sha256File(img(n - 1)), `${repo}: generation ${n}`);
    }
  }

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    s3 = await startS3();
    // Spawned CLIs inherit the environment: the S3 credentials, as a user exports them.
    process.env['AWS_ACCESS_KEY_ID'] = s3.info.accessKeyId;
    process.env['AWS_SECRET_ACCESS_KEY'] = s3.info.secretAccessKey;
    remote = `s3:${s3.info.endpoint}/offsite/site-a`;
    await makeImage(img(0), '64M', 41);
    for (let n = 1; n <= 2; n++) await mutateImage(img(n - 1), img(n), path.join(dir, `gen${n}.json`), 5, 50 + n);
    assert.equal((await vmbkp(['init', '--repo', local('a')])).code, 0);
    for (const n of [0, 1]) {
      const r = await vmbkp(['backup', '--repo', local('a'), '--set', 'vm1', '--mode', n === 0 ? 'full' : 'diff', `sda=file:${img(n)}`]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    delete process.env['AWS_ACCESS_KEY_ID'];
    delete process.env['AWS_SECRET_ACCESS_KEY'];
    await s3?.stop();
    await cleanup?.();
  });

  it('local → S3 → local: every generation restores identical, verify --read-data passes on both copies', async () => {
    assert.equal((await vmbkp(['init', '--repo', remote])).code, 0);
    const first = await copy(local('a'), remote);
    assert.equal(first.copied, 2);
    assert.ok(first.chunksSent > 0 && first.bytesSent > 0);
    await assertRestores(remote, 2);
    assert.equal((await vmbkp(['init', '--repo', local('c')])).code, 0);
    assert.equal((await copy(remote, local('c'))).copied, 2);
    await assertRestores(local('c'), 2);
    assert.deepEqual(await ids(local('c')), await ids(local('a')), 'the same generations, in order');
    for (const repo of [remote, local('c')]) {
      const v = await vmbkp(['verify', '--repo', repo, '--read-data']);
      assert.equal(v.code, 0, `${repo}: ${v.stdout}${v.stderr}`);
    }
  });

  it('a second copy sends no chunk data and commits nothing', async () => {
    const before = await ids(remote);
    const again = await copy(local('a'), remote);
    assert.equal(again.copied, 0);
    assert.equal(again.present, 2);
    assert.equal(again.chunksSent, 0);
    assert.equal(again.bytesSent, 0);
    assert.deepEqual(await ids(remote), before);
  });

  it('a copy to S3 killed before its commit completes when run again, each generation once', async () => {
    const r = await vmbkp(['backup', '--repo', local('a'), '--set', 'vm1', '--mode', 'diff', `sda=file:${img(2)}`]);
    assert.equal(r.code, 0, r.stderr);
    const killed = startVmbkp(['copy', '--from-repo', local('a'), '--repo', remote], { env: { ...FROM, VMBKP_FAILPOINT: 'copy:before-commit' } });
    const result = await killed.done;
    assert.equal(result.signal, 'SIGKILL', `the failpoint should have killed the copy: exit ${result.code}: ${result.stderr}`);
    assert.equal((await ids(remote)).length, 2, 'nothing was committed');
    const resumed = await copy(local('a'), remote);
    assert.equal(resumed.copied, 1);
    assert.deepEqual(await ids(remote), await ids(local('a')));
    await assertRestores(remote, 3);
    const v = await vmbkp(['verify', '--repo', remote, '--read-data']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });
});
