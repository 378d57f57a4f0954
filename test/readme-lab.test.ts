/**
 * The README's lab example, run as a new user would: the block marked "lab-example" is
 * executed by bash from the repository root, exactly as written.
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
});
