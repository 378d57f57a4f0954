import assert from 'node:assert/strict';
import { promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { thisProcess } from '../src/process-identity.js';
import { ABANDONED_UPLOAD_AGE_MS } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local.js';
import { tempDir } from './helpers.js';
import { storageConformance } from './storage-conformance.js';

storageConformance('local directory', async () => {
  const { dir, cleanup } = await tempDir();
  return { backend: new LocalBackend(dir), cleanup };
});

it('local backend: sweep removes uploads left by a process that is gone', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const b = new LocalBackend(dir);
    await b.put('x', Buffer.from('x'));
    // An upload interrupted by a crash: pid 2^22+1 cannot exist on Linux (pid_max ≤ 2^22).
    await fs.writeFile(path.join(dir, 'tmp', '4194305.abcdef.data_aa_bb'), 'partial');
    await fs.writeFile(path.join(dir, 'tmp', `${process.pid}.abcdef.data_cc`), 'in progress');
    assert.equal(await b.sweep(3600_000), 1);
    assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), [`${process.pid}.abcdef.data_cc`]);
  } finally {
    await cleanup();
  }
});

it('local backend: an upload named after a live pid with another start time is abandoned (the pid was reused)', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const b = new LocalBackend(dir);
    await b.put('x', Buffer.from('x'));
    const me = thisProcess();
    assert.ok(me.start, 'this machine has /proc');
    const reused = `${process.pid}.t${BigInt(me.start) + 1n}.abcdef.data_aa_bb`;
    const ours = `${process.pid}.t${me.start}.abcdef.data_cc`;
    // Written before start times were recorded: judged by the pid alone.
    const old = `${process.pid}.fedcba.data_dd`;
    for (const n of [reused, ours, old]) await fs.writeFile(path.join(dir, 'tmp', n), 'partial');
    assert.equal(await b.sweep(ABANDONED_UPLOAD_AGE_MS), 1);
    assert.deepEqual((await fs.readdir(path.join(dir, 'tmp'))).sort(), [ours, old].sort());
  } finally {
    await cleanup();
  }
});

it('local backend: an upload in progress is named after its process and start time', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const b = new LocalBackend(dir);
    await fs.mkdir(path.join(dir, 'tmp'));
    // Watch tmp/ while a put runs: its temporary name is gone once the put returns, but
    // inotify queued the event when the file was made.
    let named: (name: string) => void = () => {};
    const created = new Promise<string>((resolve) => { named = resolve; });
    const watcher = watch(path.join(dir, 'tmp'), (_e, name) => { if (name?.endsWith('.data_ab_abcd')) named(name); });
    try {
      await b.put('data/ab/abcd', Buffer.alloc(1024));
      assert.match(await created, new RegExp(`^${process.pid}\\.t${thisProcess().start}\\.[0-9a-f]{12}\\.data_ab_abcd$`));
    } finally {
      watcher.close();
    }
  } finally {
    await cleanup();
  }
});
