/**
 * Bad input to a VM backup: wrong password, wrong or missing certificate trust, unknown
 * VM, unreachable host. Each gives one line and its exit code; the password is never printed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oneLine, tempDir, treeDigest, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

describe('VM backup: bad input', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '1', '--disks', '1', '--disk-size', String(8 * 1024 * 1024)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  /** Runs a backup expected to fail; checks one line, the exit code, no password anywhere, repository unchanged. */
  async function fails(args: string[], code: number, message: RegExp): Promise<void> {
    const before = await treeDigest(repo);
    const r = await vmbkp(['backup', '--repo', repo, ...args]);
    assert.equal(r.code, code, r.stderr);
    assert.match(oneLine(r.stderr), message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.ok(!r.stdout.includes(lab.info.password) && !r.stderr.includes(lab.info.password), 'the password is not printed');
    assert.deepEqual(await treeDigest(repo), before);
  }

  it('wrong password: exit 7, names host and user', async () => {
    const wrong = path.join(dir, 'wrong.password');
    await (await import('node:fs/promises')).writeFile(wrong, 'not-the-password\n');
    await fails(['--vcenter', lab.info.url, '--user', lab.info.user, '--password-file', wrong, '--thumbprint', lab.info.thumbprint, '--vm', 'lab-vm-1'],
      7, /^vmbkp: error: login to 127\.0\.0\.1:\d+ as vmbkp failed: wrong user name or password$/);
  });

  it('wrong thumbprint: exit 7 before anything is sent', async () => {
    const bogus = 'AA:'.repeat(31) + 'AA';
    await fails(['--vcenter', lab.info.url, '--user', lab.info.user, '--password-file', pw, '--thumbprint', bogus, '--vm', 'lab-vm-1'],
      7, /^vmbkp: error: the certificate of 127\.0\.0\.1:\d+ has thumbprint [0-9A-F:]+, not the pinned AA:AA/);
  });

  it('an untrusted certificate without --thumbprint or --insecure: exit 7 and what to do', async () => {
    await fails(['--vcenter', lab.info.url, '--user', lab.info.user, '--password-file', pw, '--vm', 'lab-vm-1'],
      7, /^vmbkp: error: the certificate of 127\.0\.0\.1:\d+ is not trusted \(\w+\): pin it with --thumbprint, or use --insecure$/);
  });

  it('a malformed thumbprint: exit 2', async () => {
    await fails([...lab.vcenterArgs(pw).slice(0, -2), '--thumbprint', 'xyz', '--vm', 'lab-vm-1'], 2, /^vmbkp: error: thumbprint "xyz" is invalid/);
  });

  it('unknown VM: exit 2', async () => {
    await fails([...lab.vcenterArgs(pw), '--vm', 'no-such-vm'], 2, /^vmbkp: error: VM "no-such-vm" does not exist on 127\.0\.0\.1:\d+$/);
    await fails([...lab.vcenterArgs(pw), '--vm', 'vm-99999'], 2, /^vmbkp: error: VM vm-99999 does not exist/);
  });

  it('unreachable host: exit 1', async () => {
    await fails(['--vcenter', 'https://127.0.0.1:1/sdk', '--user', 'u', '--password-file', pw, '--insecure', '--vm', 'x'],
      1, /^vmbkp: error: connecting to 127\.0\.0\.1:1 failed: ECONNREFUSED/);
  });

  it('missing password file and missing options: exit 2', async () => {
    await fails(['--vcenter', lab.info.url, '--user', 'u', '--password-file', path.join(dir, 'nope'), '--vm', 'x'], 2, /^vmbkp: error: reading password file .*nope failed: ENOENT/);
    await fails(['--vcenter', lab.info.url, '--user', 'u', '--vm', 'x'], 2, /^vmbkp: error: no password for vCenter https:\/\/127\.0\.0\.1:\d+\/sdk: give --password-file, VMBKP_VCENTER_PASSWORD_FILE or VMBKP_VCENTER_PASSWORD_COMMAND$/);
    await fails(['--vcenter', lab.info.url, '--user', 'u', '--password-file', pw, '--insecure', '--thumbprint', lab.info.thumbprint, '--vm', 'x'], 2, /exclude each other/);
  });

  it('--insecure connects without verifying, and the backup works', async () => {
    const r = await vmbkp(['backup', '--repo', repo, '--vcenter', lab.info.url, '--user', lab.info.user, '--password-file', pw, '--insecure', '--vm', 'lab-vm-1']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(lab.info.password) && !r.stderr.includes(lab.info.password));
  });
});
