/**
 * A stand-in `nbdkit` for the vddk transport (VMware's VDDK cannot be installed here):
 * first in PATH, it checks the arguments vmbkp gives the vddk plugin (server, user,
 * password=+FILE holding the password, SHA-1 thumbprint, vm=moref=, file=, and for reads
 * --readonly and snapshot=; for writes no --readonly), logs them, then serves the lab's
 * flat file with the real `nbdkit file` (a snapshot's delta: a copy of the snapshot's view).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Lab } from './lab.js';

/** Validates nbdkit's arguments as the vddk plugin would need them; prints "SOCKET FLATFILE". */
const CHECK = `
const fs = require('node:fs');
const args = process.argv.slice(2);
const fail = (m) => { console.log('stand-in nbdkit: ' + m); process.exit(1); };
fs.appendFileSync(process.env.STANDIN_LOG, JSON.stringify(args) + '\\n');
const reading = process.env.STANDIN_MODE === 'read';
const opts = [];
while (args[0] && args[0].startsWith('--')) { const a = args.shift(); opts.push(a); if (a === '--unix') opts.push(args.shift()); }
const sock = opts[opts.indexOf('--unix') + 1];
if (reading && (!opts.includes('--readonly') || !sock)) fail('expected --readonly --unix SOCKET');
if (!reading && (opts.includes('--readonly') || !sock)) fail('expected --unix SOCKET and no --readonly');
if (args.shift() !== 'vddk') fail('expected the vddk plugin');
const p = Object.fromEntries(args.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
for (const k of ['server', 'user', 'password', 'thumbprint', 'vm', 'file', ...(reading ? ['snapshot'] : [])]) if (!p[k]) fail('missing ' + k + '=');
if (args.some((a) => a.includes(process.env.STANDIN_PASSWORD))) fail('the password is in the arguments');
if (!p.password.startsWith('+')) fail('password must be password=+FILE');
if (fs.readFileSync(p.password.slice(1), 'utf8') !== process.env.STANDIN_PASSWORD) fail('the password file does not hold the password');
if ((fs.statSync(p.password.slice(1)).mode & 0o077) !== 0) fail('the password file is readable by others');
if (p.thumbprint !== process.env.STANDIN_THUMBPRINT) fail('thumbprint ' + p.thumbprint);
if (!/^moref=vm-\\d+$/.test(p.vm)) fail('vm=' + p.vm);
if (reading && !/^snapshot-\\d+$/.test(p.snapshot)) fail('snapshot=' + p.snapshot);
const m = /^\\[(.+)\\] (.+)\\.vmdk$/.exec(p.file);
if (!m) fail('file=' + p.file);
const flat = process.env.STANDIN_DSDIR + '/' + m[2] + '-flat.vmdk';
if (!reading || fs.existsSync(flat)) {
  console.log(sock + ' ' + flat);
} else {
  // A snapshot above another is a delta, which VDDK reads through its chain: serve the
  // snapshot's view as the lab's control endpoint gives it, copied to a file.
  (async () => {
    const vms = await (await fetch(process.env.STANDIN_CONTROL + '/vms')).json();
    const vm = vms.find((v) => 'moref=' + v.moref === p.vm);
    const name = m[2].slice(m[2].lastIndexOf('/') + 1) + '.vmdk';
    const disk = vm && vm.disks.find((d) => d.chain.includes(name));
    if (!disk) fail('no disk of ' + p.vm + ' has ' + name + ' in its chain');
    const res = await fetch(process.env.STANDIN_CONTROL + '/vms/' + vm.name + '/disks/' + disk.key + '/read?snapshot=' + p.snapshot);
    if (!res.ok) fail('reading the view of ' + p.snapshot + ': HTTP ' + res.status);
    const view = sock + '.view';
    fs.writeFileSync(view, Buffer.from(await res.arrayBuffer()));
    console.log(sock + ' ' + view);
  })();
}
`;

const STANDIN = `#!/bin/bash
out=$(node "$STANDIN_CHECK" "$@") || { echo "$out" >&2; exit 1; }
read -r sock flat <<<"$out"
exec /usr/bin/nbdkit --foreground $STANDIN_READONLY --exit-with-parent --unix "$sock" file "$flat"
`;

export interface VddkStandin {
  /** The environment that puts the stand-in first in PATH. */
  readonly env: NodeJS.ProcessEnv;
  /** The arguments of every nbdkit started so far, in order. */
  calls(): Promise<string[][]>;
}

/** Installs the stand-in under DIR/NAME; `read` for backups (a read-only snapshot disk), `write` for restores. */
export async function installVddkStandin(dir: string, name: string, lab: Lab, mode: 'read' | 'write'): Promise<VddkStandin> {
  const home = path.join(dir, name);
  const bin = path.join(home, 'bin');
  await fs.mkdir(bin, { recursive: true });
  const check = path.join(home, 'check.cjs');
  const log = path.join(home, 'nbdkit-args.jsonl');
  await fs.writeFile(check, CHECK);
  await fs.writeFile(path.join(bin, 'nbdkit'), STANDIN, { mode: 0o755 });
  return {
    env: {
      PATH: `${bin}:${process.env['PATH']}`, STANDIN_CHECK: check, STANDIN_LOG: log, STANDIN_MODE: mode,
      STANDIN_READONLY: mode === 'read' ? '--readonly' : '',
      STANDIN_PASSWORD: lab.info.password, STANDIN_THUMBPRINT: lab.info.thumbprint, STANDIN_DSDIR: lab.info.datastoreDir,
      STANDIN_CONTROL: lab.info.control,
    },
    calls: async () => (await fs.readFile(log, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]),
  };
}
