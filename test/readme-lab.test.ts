/**
 * The README's lab examples, run as a new user would: the blocks marked "lab-example" and
 * "lab-files-example" are executed by bash from the repository root, exactly as written.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, run } from './helpers.js';

describe('README', () => {
  it('the lab example backs up a lab VM twice, the second time incrementally, and restores it as a new VM', async () => {
    const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    const m = /<!-- lab-example[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has the lab example block');
    const r = await run('bash', ['-e', '-c', m[1]!], { cwd: ROOT, timeoutMs: 240_000, group: true, env: { VMBKP_REPO_PASSWORD_FILE: '', VMBKP_KDF_MEMORY: '' } });
    assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /set lab-vm-1 generation 1 \(auto\)/);
    assert.match(r.stdout, /set lab-vm-1 generation 2 \(auto\)/);
    assert.match(r.stdout, /2000\s+incr/);
    assert.match(r.stdout, /restored set lab-vm-1 generation 1 as VM lab-vm-1-restored \(vm-\d+\): created, new UUIDs and MAC addresses, powered on/);
  });

  it('the files example backs up a lab VM whose disk holds ext4 twice, finds the changed file and gets the first generation\'s copy', async () => {
    const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    const m = /<!-- lab-files-example[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has the files lab example block');
    // Four appliance launches (list, find, get) under TCG on a busy machine: a generous limit, not a timing assertion.
    const r = await run('bash', ['-e', '-c', m[1]!], { cwd: ROOT, timeoutMs: 900_000, group: true, env: { VMBKP_REPO_PASSWORD_FILE: '', VMBKP_KDF_MEMORY: '' } });
    assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /set lab-vm-1 generation 2 \(auto\)/);
    assert.match(r.stdout, /^2000\s+sda1\s+ext4\s.*\sroot\s*$/m, 'files list: the ext4 partition of disk 2000');
    assert.match(r.stdout, /\/etc\/nginx\/nginx\.conf/, 'files find names the file');
    assert.match(r.stdout, /^worker_processes 2;$/m, "files get: generation 1's copy");
    assert.doesNotMatch(r.stdout, /^worker_processes 8;$/m);
  });
});
