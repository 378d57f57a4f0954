/**
 * `vmbkp status` and `vmbkp show` on a real (encrypted) repository of file: backups: the
 * figures equal what `list --json` says and what the repository's own files say (sizes,
 * packs, the chunks the pack tables list); locks of a running backup, the last verify and
 * gc, and a generation that failed verify show up. `show` of a VM generation is checked
 * against the lab's own account of the VM.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { flipByte, listFiles, makeImage, mutateImage, oneLine, startVmbkp, tempDir, treeSize, vmbkp, vmbkpJson } from './helpers.js';
import { startLabRepository } from './lab.js';
import { openTestRepository, packEntries } from './repo-internals.js';
import { objectList, s3Env, s3Repo } from './s3-repo.js';
import { s3Bucket, startS3 } from './s3-server.js';
import { readLocks } from '../src/repository/lock.js';

const MiB = 1024 * 1024;

interface ListJson {
  sets: { name: string; generations: { set: string; generation: number; id: string; started: string; finished: string; disks: { name: string; size: number; mode: string; bytesRead: number; bytesStored: number }[] }[] }[];
}

interface StatusJson {
  repository: { location: string; kind: string; encrypted: boolean; chunkSize: number };
  storage: { objects: number; bytes: number; byKind: Record<string, { objects: number; bytes: number }> };
  data: { packs: number; indexFiles: number; chunks: number; indexPieces: number; uniqueBytes: number; chunkBytesStored: number };
  logicalBytes: number;
  dedupRatio: number | null;
  compressionRatio: number | null;
  generations: number;
  sets: { name: string; generations: number; logicalBytes: number; newest: { generation: number; id: string; finished: string; ageSeconds: number; mode: string }; failedVerify: number[] | null }[];
  verify: null | { time: string; ok: boolean; readData: boolean; problems: number; failed: { set: string; generation: number; exists: boolean }[] };
  gc: null | { time: string; packsRemoved: number; bytesFreed: number };
  locks: { kind?: string; operation?: string; host?: string; pid?: number; since?: string; refreshed?: string; stale: boolean }[];
}

interface ShowSetJson {
  set: string;
  generations: { generation: number; id: string; disks: { name: string; size: number; bytesRead: number; bytesStored: number }[]; totals: { size: number; bytesRead: number; bytesStored: number } }[];
}

interface ShowGenerationJson {
  set: string; generation: number; id: string; consistency?: string;
  disks: { name: string; size: number; mode: string; bytesRead: number; bytesStored: number }[];
  machine?: { kind: string; name?: string; instanceUuid?: string };
  machineDetails?: {
    kind: string; name?: string; instanceUuid?: string; consistency?: string;
    configuration?: {
      cpus?: number; memoryMB?: number; guestId?: string;
      controllers: { key: number; type: string; busNumber?: number }[];
      nics: { key: number; type: string; network?: string; macAddress?: string }[];
      disks: { key: number; label?: string; controllerKey?: number; unitNumber?: number; capacity?: number; position?: string }[];
    };
  };
  warnings: string[];
}

describe('vmbkp status and show of file: backups', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  const file = (n: string) => path.join(dir, n);
  const status = (r = repo) => vmbkpJson<StatusJson>(['status', '--repo', r]);

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-status-'));
    repo = file('repo');
    await makeImage(file('a.img'), '4M', 701);
    await mutateImage(file('a.img'), file('a2.img'), file('a2.json'), 20, 702);
    await makeImage(file('b.img'), '2M', 703);
    // dup.img is a.img again: its set stores no chunk of its own.
    await fs.copyFile(file('a.img'), file('dup.img'));
    const init = await vmbkp(['init', '--repo', repo]);
    assert.equal(init.code, 0, init.stderr);
    for (const args of [['--set', 'web', `sda=file:${file('a.img')}`, `sdb=file:${file('b.img')}`], ['--set', 'db', `sda=file:${file('dup.img')}`],
      ['--set', 'web', `sda=file:${file('a2.img')}`, `sdb=file:${file('b.img')}`]]) {
      const r = await vmbkp(['backup', '--repo', repo, ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await cleanup?.();
  });

  it('status --json agrees with list --json and with the repository files', async () => {
    const s = await status();
    const list = await vmbkpJson<ListJson>(['list', '--repo', repo]);

    assert.equal(s.repository.location, repo);
    assert.equal(s.repository.kind, 'local');
    assert.equal(s.repository.encrypted, true);
    // Sets, generation counts and the newest generation: as list says.
    assert.deepEqual(s.sets.map((x) => x.name), list.sets.map((x) => x.name));
    assert.deepEqual(s.sets.map((x) => x.name).sort(), ['db', 'web']);
    for (const set of list.sets) {
      const st = s.sets.find((x) => x.name === set.name)!;
      const newest = set.generations[set.generations.length - 1]!;
      assert.equal(st.generations, set.generations.length);
      assert.equal(st.newest.generation, newest.generation);
      assert.equal(st.newest.id, newest.id);
      assert.equal(st.newest.finished, newest.finished);
      assert.equal(st.logicalBytes, set.generations.reduce((n, g) => n + g.disks.reduce((m, d) => m + d.size, 0), 0));
      assert.equal(st.failedVerify, null, 'no verify has run: unknown');
    }
    assert.equal(s.generations, 3);
    const logical = list.sets.flatMap((x) => x.generations).flatMap((g) => g.disks).reduce((n, d) => n + d.size, 0);
    assert.equal(s.logicalBytes, logical);
    assert.equal(logical, (4 + 2) * MiB * 2 + 4 * MiB);

    // Size on disk: every file under the directory; packs and index files as the folders hold them.
    assert.equal(s.storage.bytes, await treeSize(repo));
    assert.equal(s.storage.objects, (await listFiles(repo)).length);
    const packs = await listFiles(path.join(repo, 'data'));
    assert.equal(s.data.packs, packs.length);
    assert.equal(s.data.indexFiles, (await listFiles(path.join(repo, 'index'))).length);

    // Chunks: what the pack tables list, read with the repository's keys (not through the index).
    const r = await openTestRepository(repo);
    const chunks = new Map<string, { raw: number; stored: number }>();
    let pieces = 0;
    for (const p of packs) {
      for (const e of await packEntries(r, `data/${p}`)) {
        if (e.type === 0) chunks.set(e.hex, { raw: e.rawLength, stored: e.length });
        else pieces++;
      }
    }
    assert.equal(s.data.chunks, chunks.size);
    assert.equal(s.data.indexPieces, pieces);
    const unique = [...chunks.values()].reduce((n, c) => n + c.raw, 0);
    const stored = [...chunks.values()].reduce((n, c) => n + c.stored, 0);
    assert.equal(s.data.uniqueBytes, unique);
    assert.equal(s.data.chunkBytesStored, stored);
    assert.equal(s.dedupRatio, logical / unique);
    assert.equal(s.compressionRatio, unique / stored);
    // The duplicate set stored nothing: the unique data is less than the two web generations alone.
    assert.ok(unique < 2 * 6 * MiB, `unique ${unique}`);

    assert.equal(s.verify, null);
    assert.equal(s.gc, null);
    assert.deepEqual(s.locks, []);

    const text = await vmbkp(['status', '--repo', repo]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^last verify +none recorded$/m);
    assert.match(text.stdout, /^web +2 +2 .* 12\.0 MiB +unknown$/m);
  });

  it('a backup paused at a failpoint shows its lock: kind, holder, since when', async () => {
    const started = Date.now();
    const backup = startVmbkp(['backup', '--repo', repo, '--set', 'paused', `sda=file:${file('b.img')}`], { env: { VMBKP_FAILPOINT: 'backup:before-commit:pause' } });
    try {
      await backup.stderrMatching(/failpoint backup:before-commit: paused/);
      const s = await status();
      assert.equal(s.locks.length, 1, JSON.stringify(s.locks));
      const l = s.locks[0]!;
      assert.equal(l.kind, 'shared');
      assert.equal(l.operation, 'backup of paused');
      assert.equal(l.host, hostname());
      assert.equal(l.pid, backup.pid);
      assert.equal(l.stale, false);
      assert.ok(Date.parse(l.since!) >= started - 1000 && Date.parse(l.since!) <= Date.now(), `since ${l.since}`);
      // The lock object itself records when it was taken, apart from its refresh time.
      const [stored] = await readLocks(await openTestRepository(repo));
      assert.equal(stored?.record?.since, l.since);
      const text = await vmbkp(['status', '--repo', repo]);
      assert.match(text.stdout, new RegExp(`^  shared by backup of paused \\(pid ${backup.pid} on ${hostname()}\\) since `, 'm'));
    } finally {
      backup.child.kill('SIGUSR2');
    }
    const done = await backup.done;
    assert.equal(done.code, 0, done.stderr);
    const s = await status();
    assert.deepEqual(s.locks, []);
    assert.ok(s.sets.some((x) => x.name === 'paused' && x.newest.generation === 1));
  });

  it('show --set lists the generations as list does; show --generation gives one in detail', async () => {
    const list = await vmbkpJson<ListJson>(['list', '--repo', repo, '--set', 'web']);
    const gens = list.sets[0]!.generations;
    const set = await vmbkpJson<ShowSetJson>(['show', '--repo', repo, '--set', 'web']);
    assert.equal(set.set, 'web');
    assert.deepEqual(set.generations.map((g) => [g.generation, g.id]), gens.map((g) => [g.generation, g.id]));
    for (const g of set.generations) {
      assert.equal(g.totals.size, 6 * MiB);
      assert.equal(g.totals.bytesRead, g.disks.reduce((n, d) => n + d.bytesRead, 0));
      assert.equal(g.totals.bytesStored, g.disks.reduce((n, d) => n + d.bytesStored, 0));
    }
    const latest = await vmbkpJson<ShowGenerationJson>(['show', '--repo', repo, '--set', 'web', '--generation', 'latest']);
    const two = gens[1]!;
    assert.equal(latest.generation, 2);
    assert.equal(latest.id, two.id);
    assert.deepEqual(latest.disks.map((d) => [d.name, d.size, d.mode, d.bytesRead, d.bytesStored]), two.disks.map((d) => [d.name, d.size, d.mode, d.bytesRead, d.bytesStored]));
    assert.equal(latest.machineDetails, undefined, 'plain disks have no machine');
    assert.deepEqual(latest.warnings, []);

    const text = await vmbkp(['show', '--repo', repo, '--set', 'web', '--generation', '1']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^set web generation 1 \\(${gens[0]!.id}\\)$`, 'm'));
    assert.match(text.stdout, /^sdb +2\.00 MiB +/m);

    const none = await vmbkp(['show', '--repo', repo, '--set', 'nosuch']);
    assert.equal(none.code, 2, none.stderr);
    assert.match(oneLine(none.stderr), /^vmbkp: error: set nosuch has no generations in .* \(sets: db, paused, web\)$/);
  });

  it('verify and gc leave records status shows; a corrupted pack names the generation that failed verify', async () => {
    const v = await vmbkp(['verify', '--repo', repo]);
    assert.equal(v.code, 0, v.stderr);
    let s = await status();
    assert.equal(s.verify?.ok, true);
    assert.equal(s.verify?.readData, false);
    assert.deepEqual(s.verify?.failed, []);
    assert.ok(s.sets.every((x) => Array.isArray(x.failedVerify) && x.failedVerify.length === 0));
    assert.equal(s.gc, null);

    // Remove a generation so gc has work, then gc.
    const pruned = await vmbkp(['prune', '--repo', repo, '--set', 'paused', '--keep-last', '1']);
    assert.equal(pruned.code, 0, pruned.stderr);
    const g = await vmbkpJson<{ packsRemoved: number; bytesFreed: number }>(['gc', '--repo', repo]);
    s = await status();
    assert.ok(s.gc, 'gc recorded');
    assert.equal(s.gc.packsRemoved, g.packsRemoved);
    assert.equal(s.gc.bytesFreed, g.bytesFreed);
    assert.equal(s.storage.bytes, await treeSize(repo), 'the records count in the size on disk');

    // A new web generation whose chunks are its own, in a pack of its own; corrupt that pack.
    await mutateImage(file('a2.img'), file('a3.img'), file('a3.json'), 30, 704);
    const before = new Set(await listFiles(path.join(repo, 'data')));
    const b = await vmbkp(['backup', '--repo', repo, '--set', 'web', `sda=file:${file('a3.img')}`]);
    assert.equal(b.code, 0, b.stderr);
    const fresh = (await listFiles(path.join(repo, 'data'))).filter((p) => !before.has(p));
    assert.equal(fresh.length, 1, `one new pack: ${fresh}`);
    await flipByte(path.join(repo, 'data', fresh[0]!), 100);
    const bad = await vmbkp(['verify', '--repo', repo, '--read-data']);
    assert.equal(bad.code, 5, bad.stderr);

    s = await status();
    assert.equal(s.verify?.ok, false);
    assert.equal(s.verify?.readData, true);
    assert.deepEqual(s.verify?.failed, [{ set: 'web', generation: 3, exists: true }]);
    assert.deepEqual(s.sets.find((x) => x.name === 'web')?.failedVerify, [3]);
    assert.deepEqual(s.sets.find((x) => x.name === 'db')?.failedVerify, []);
    const text = await vmbkp(['status', '--repo', repo]);
    assert.match(text.stdout, /^failed +web generation 3$/m);
  });
});

describe('vmbkp show of a VM generation', () => {
  it('summarises the machine configuration as the lab describes the VM', async () => {
    const fixture = await startLabRepository(['--vms', '1', '--disks', '2', '--nics', '2', '--disk-size', String(4 * MiB)]);
    try {
      const { lab, repo, pw } = fixture;
      const b = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', 'lab-vm-1']);
      assert.equal(b.code, 0, b.stderr);
      const vm = await lab.vm('lab-vm-1');
      const g = await vmbkpJson<ShowGenerationJson>(['show', '--repo', repo, '--set', 'lab-vm-1', '--generation', 'latest']);
      const m = g.machineDetails!;
      assert.equal(m.kind, 'vsphere-vm');
      assert.equal(m.name, 'lab-vm-1');
      assert.equal(m.instanceUuid, vm.instanceUuid);
      assert.ok(m.consistency, 'consistency recorded');
      const c = m.configuration!;
      assert.ok(Number.isInteger(c.cpus) && c.cpus! >= 1, `cpus ${c.cpus}`);
      assert.ok(Number.isInteger(c.memoryMB) && c.memoryMB! > 0, `memory ${c.memoryMB}`);
      const byKey = <T extends { key: number }>(xs: T[]) => [...xs].sort((x, y) => x.key - y.key);
      assert.deepEqual(byKey(c.controllers).map((x) => [x.key, x.type, x.busNumber]), byKey(vm.controllers).map((x) => [x.key, x.type, x.busNumber]));
      assert.equal(vm.nics.length, 2);
      assert.deepEqual(byKey(c.nics).map((n) => [n.key, n.type, n.network, n.macAddress]), byKey(vm.nics).map((n) => [n.key, n.type, n.network, n.macAddress]));
      assert.deepEqual(byKey(c.disks).map((d) => [d.key, d.label, d.controllerKey, d.unitNumber, d.capacity]),
        byKey(vm.disks).map((d) => [d.key, d.label, d.controllerKey, d.unitNumber, d.capacity]));
      const scsi = vm.controllers.find((x) => x.key === vm.disks[0]!.controllerKey)!;
      assert.equal(byKey(c.disks)[0]!.position, `scsi${scsi.busNumber}:${vm.disks[0]!.unitNumber}`);
      assert.deepEqual(g.warnings, []);

      const text = await vmbkp(['show', '--repo', repo, '--set', 'lab-vm-1', '--generation', '1']);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^instance +${vm.instanceUuid}$`, 'm'));
      assert.match(text.stdout, new RegExp(`^nic +.* on ${vm.nics[0]!.network}, ${vm.nics[0]!.macAddress}$`, 'm'));
    } finally {
      await fixture.stop();
    }
  });
});

describe('vmbkp status of a repository on S3', () => {
  it('sums the bucket\'s objects through the listing and reads the records there', async () => {
    const server = await startS3();
    const { dir, cleanup } = await tempDir('vmbkp-status-s3-');
    try {
      const client = server.client();
      const env = s3Env(server);
      const bucket = await s3Bucket(client, 'status');
      const repo = s3Repo(server.info.endpoint, bucket, 'r');
      await makeImage(path.join(dir, 'a.img'), '3M', 711);
      for (const args of [['init', '--repo', repo], ['backup', '--repo', repo, '--set', 'vm', `sda=file:${path.join(dir, 'a.img')}`], ['verify', '--repo', repo]]) {
        const r = await vmbkp(args, { env });
        assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
      }
      const r = await vmbkp(['status', '--repo', repo, '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as StatusJson;
      const objects = (await objectList(client, bucket, 'r/')).map((l) => l.split(' '));
      assert.equal(s.repository.kind, 's3');
      assert.equal(s.repository.encrypted, true);
      assert.equal(s.storage.objects, objects.length);
      assert.equal(s.storage.bytes, objects.reduce((n, [, size]) => n + Number(size), 0));
      assert.equal(s.data.packs, objects.filter(([key]) => key!.startsWith('r/data/')).length);
      assert.ok(s.data.packs > 0);
      assert.deepEqual(s.sets.map((x) => [x.name, x.generations, x.failedVerify]), [['vm', 1, []]]);
      assert.equal(s.verify?.ok, true);
      assert.equal(s.logicalBytes, 3 * MiB);
    } finally {
      await server.stop();
      await cleanup();
    }
  });
});
