/**
 * The vddk transport. VMware's VDDK cannot be installed here, so a stand-in `nbdkit`
 * first in PATH checks the arguments vmbkp gives the vddk plugin (server, user,
 * password=+FILE holding the password, SHA-1 thumbprint, vm=moref=, snapshot=, file=)
 * and then serves the lab's flat file with the real `nbdkit file`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { oneLine, sha256File, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const MiB = 1024 * 1024;

/** Validates nbdkit's arguments as the vddk plugin would need them; prints "SOCKET FLATFILE". */
const CHECK = `
const fs = require('node:fs');
const args = process.argv.slice(2);
const fail = (m) => { console.log('stand-in nbdkit: ' + m); process.exit(1); };
fs.writeFileSync(process.env.STANDIN_LOG, JSON.stringify(args));
const opts = [];
while (args[0] && args[0].startsWith('--')) { const a = args.shift(); opts.push(a); if (a === '--unix') opts.push(args.shift()); }
const sock = opts[opts.indexOf('--unix') + 1];
if (!opts.includes('--readonly') || !sock) fail('expected --readonly --unix SOCKET');
if (args.shift() !== 'vddk') fail('expected the vddk plugin');
const p = Object.fromEntries(args.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
for (const k of ['server', 'user', 'password', 'thumbprint', 'vm', 'snapshot', 'file']) if (!p[k]) fail('missing ' + k + '=');
if (args.some((a) => a.includes(process.env.STANDIN_PASSWORD))) fail('the password is in the arguments');
if (!p.password.startsWith('+')) fail('password must be password=+FILE');
if (fs.readFileSync(p.password.slice(1), 'utf8') !== process.env.STANDIN_PASSWORD) fail('the password file does not hold the password');
if ((fs.statSync(p.password.slice(1)).mode & 0o077) !== 0) fail('the password file is readable by others');
if (p.thumbprint !== process.env.STANDIN_THUMBPRINT) fail('thumbprint ' + p.thumbprint);
if (!/^moref=vm-\\d+$/.test(p.vm)) fail('vm=' + p.vm);
if (!/^snapshot-\\d+$/.test(p.snapshot)) fail('snapshot=' + p.snapshot);
const m = /^\\[(.+)\\] (.+)\\.vmdk$/.exec(p.file);
if (!m) fail('file=' + p.file);
console.log(sock + ' ' + process.env.STANDIN_DSDIR + '/' + m[2] + '-flat.vmdk');
`;

const STANDIN = `#!/bin/bash
out=$(node "$STANDIN_CHECK" "$@") || { echo "$out" >&2; exit 1; }
read -r sock flat <<<"$out"
exec /usr/bin/nbdkit --foreground --readonly --exit-with-parent --unix "$sock" file "$flat"
`;

describe('vddk transport', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let pw: string;
  let env: NodeJS.ProcessEnv;
  const vm = 'lab-vm-1';

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '1', '--disks', '2', '--disk-size', String(32 * MiB)]);
    repo = path.join(dir, 'repo');
    pw = await lab.passwordFile(dir);
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(path.join(dir, 'check.cjs'), CHECK);
    await fs.writeFile(path.join(bin, 'nbdkit'), STANDIN, { mode: 0o755 });
    env = {
      PATH: `${bin}:${process.env['PATH']}`,
      STANDIN_CHECK: path.join(dir, 'check.cjs'), STANDIN_LOG: path.join(dir, 'nbdkit-args.json'),
      STANDIN_PASSWORD: lab.info.password, STANDIN_THUMBPRINT: lab.info.thumbprint, STANDIN_DSDIR: lab.info.datastoreDir,
    };
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  it('backs up each disk through nbdkit vddk; restores equal the disks', async () => {
    const expected = new Map<number, string>();
    for (const d of (await lab.vm(vm)).disks) expected.set(d.key, await lab.sha256(vm, d.key));
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk', '--enable-cbt', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const args = JSON.parse(await fs.readFile(env['STANDIN_LOG']!, 'utf8')) as string[];
    assert.ok(args.includes(`user=${lab.info.user}`) && args.includes('server=127.0.0.1'), args.join(' '));
    assert.ok(args.includes(`file=[${lab.info.datastore}] ${vm}/${vm}_1.vmdk`), args.join(' '));
    for (const [key, sha] of expected) {
      const out = path.join(dir, `r${key}.img`);
      const rr = await vmbkp(['restore', '--repo', repo, '--set', vm, '--generation', '1', '--disk', String(key), '--to', `file:${out}`]);
      assert.equal(rr.code, 0, rr.stderr);
      assert.equal(await sha256File(out), sha);
    }
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
    // The next generation is incr: CBT through the API, data through nbdkit.
    await lab.write(vm, 2000, 3 * MiB, Buffer.alloc(65536, 3));
    const r2 = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk', '--json'], { env });
    assert.equal(r2.code, 0, r2.stderr);
    const disks = (JSON.parse(r2.stdout) as { vms: { generation: { disks: { mode: string; bytesRead: number }[] } }[] }).vms[0]!.generation.disks;
    assert.deepEqual(disks.map((d) => d.mode), ['incr', 'incr']);
    assert.equal(disks[0]!.bytesRead, 256 * 1024);
    assert.equal(disks[1]!.bytesRead, 0);
  });

  it('without nbdkit: a clear error that says what to install; no snapshot left', async () => {
    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty, { recursive: true });
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk'], { env: { PATH: empty } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: nbdkit is not installed, which the vddk transport needs: apt install nbdkit/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });

  it("with Debian's nbdkit, which has no vddk plugin: says so", async (t) => {
    const probe = await promisify(execFile)('nbdkit', ['vddk', '--dump-plugin']).then(() => true, () => false);
    if (probe) { t.skip('this nbdkit has a vddk plugin'); return; }
    const r = await vmbkp(['backup', '--repo', repo, ...lab.vcenterArgs(pw), '--vm', vm, '--transport', 'vddk']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /^vmbkp: error: nbdkit's vddk plugin is not installed/);
    assert.deepEqual(await lab.vmbkpSnapshots(vm), []);
  });
});
