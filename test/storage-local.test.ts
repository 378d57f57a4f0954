import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
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
