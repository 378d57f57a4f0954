#!/usr/bin/env node
// VM restore throughput against the vSphere lab (https transport: /folder PUT, then a
// read-back through /folder GET checked against the generation's digests).
//
//   node bench/restore-vm.mjs [--disks 2] [--disk-size 256M] [--fill lab|random] [--runs 3]
//                                                             (after `npm run build`)
//
// Starts the lab with one VM, backs it up once, then restores that generation as a new VM
// --runs times (each under a new name) and reports, per run, the wall-clock time of the
// whole command and the write and read-back times of the disks from its --json result.
// --fill lab keeps the lab's pattern (about 30 % of each disk holds data, the rest are
// holes); --fill random writes random data over every disk first, so every byte is data.
// The upload sends every byte of the capacity either way (holes as zeros). Beside it, the
// same bytes read from the lab's /folder with one GET (`curl -k … > /dev/null`) is the
// transport's limit on this machine, and the same disks restored to local files
// (`vmbkp restore --disk … --to file:`) the restore engine's.
// The repository is encrypted, as `vmbkp init` makes it by default (a password file in the
// work directory, given to every command as VMBKP_REPO_PASSWORD_FILE).
//
// Report (Markdown) on stdout, progress on stderr. Exit 1 when a command fails.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const vmbkpBin = path.join(root, 'bin/vmbkp.js');
const MiB = 1024 * 1024;

const { values: opts } = parseArgs({
  options: {
    disks: { type: 'string', default: '2' },
    'disk-size': { type: 'string', default: '256M' },
    fill: { type: 'string', default: 'lab' },
    runs: { type: 'string', default: '3' },
  },
});
if (!['lab', 'random'].includes(opts.fill)) { process.stderr.write('--fill must be lab or random\n'); process.exit(2); }
const log = (m) => process.stderr.write(`restore-vm bench: ${m}\n`);

let repoPasswordFile;
function vmbkp(args) {
  const t0 = performance.now();
  const env = { ...process.env, CI: 'true', VMBKP_REPO_PASSWORD_FILE: repoPasswordFile };
  delete env.VMBKP_REPO_PASSWORD_COMMAND; delete env.VMBKP_REPO;
  const out = execFileSync(process.execPath, [vmbkpBin, ...args], { encoding: 'utf8', maxBuffer: 64 * MiB, env });
  return { out, ms: performance.now() - t0 };
}

const lab = execFileSync(process.execPath, [path.join(root, 'scripts/lab.mjs'), '--build-only'], { encoding: 'utf8' }).trim().split('\n').pop();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmbkp-bench-restore-'));
repoPasswordFile = path.join(work, 'repo-password');
fs.writeFileSync(repoPasswordFile, 'vmbkp-bench\n', { mode: 0o600 });
const child = spawn(lab, ['--vms', '1', '--disks', opts.disks, '--nics', '1', '--disk-size', opts['disk-size']], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const info = JSON.parse(await new Promise((resolve) => createInterface({ input: child.stdout }).once('line', resolve)));
  const pw = path.join(work, 'pw');
  fs.writeFileSync(pw, `${info.password}\n`, { mode: 0o600 });
  const vc = ['--vcenter', info.url, '--user', info.user, '--password-file', pw, '--thumbprint', info.thumbprintSha256];
  const vm = info.vms[0];
  const disks = JSON.parse(await (await fetch(`${info.control}/vms/${vm}`)).text()).disks;
  if (opts.fill === 'random') {
    log(`writing random data over ${disks.length} disks`);
    for (const d of disks) {
      for (let off = 0; off < d.capacity; off += 16 * MiB) {
        const body = crypto.randomBytes(Math.min(16 * MiB, d.capacity - off));
        const res = await fetch(`${info.control}/vms/${vm}/disks/${d.key}/write?offset=${off}`, { method: 'POST', body });
        if (!res.ok) throw new Error(`lab write: ${res.status}`);
      }
    }
  }
  const repo = path.join(work, 'repo');
  const { chunkSize } = JSON.parse(vmbkp(['init', '--repo', repo, '--json']).out);
  log('backing up');
  vmbkp(['backup', '--repo', repo, ...vc, '--vm', vm]);
  // The manifest through `vmbkp list` (an encrypted repository's manifests are sealed, its set names hidden).
  const listed = JSON.parse(vmbkp(['list', '--repo', repo, '--set', vm, '--json']).out);
  const manifest = listed.sets.find((s) => s.name === vm)?.generations.find((g) => g.generation === 1);
  if (!manifest) throw new Error(`vmbkp list shows no generation 1 of ${vm}`);
  const stat = (d, k) => d.stats?.[k] ?? d[k] ?? 0;
  const capacity = manifest.disks.reduce((n, d) => n + d.size, 0);
  const data = manifest.disks.reduce((n, d) => n + stat(d, 'bytesRead'), 0);
  const nonZero = manifest.disks.reduce((n, d) => n + (stat(d, 'chunks') - stat(d, 'chunksZero')) * chunkSize, 0);

  // The transport's limit: the same bytes read through /folder in one GET per disk (curl to /dev/null).
  // The cookie goes to curl in a file, not as an argument.
  const cookieHeader = path.join(work, 'cookie-header');
  fs.writeFileSync(cookieHeader, `Cookie: ${login(info)}\n`, { mode: 0o600 });
  let curlMs = 0;
  for (const d of disks) {
    const flat = d.fileName.replace(/^\[[^\]]+\] /, '').replace(/\.vmdk$/, '-flat.vmdk');
    const url = `${info.url.replace(/\/sdk$/, '')}/folder/${flat}?dcPath=${info.datacenter}&dsName=${info.datastore}`;
    const t0 = performance.now();
    execFileSync('curl', ['-sk', '-o', '/dev/null', '-H', `@${cookieHeader}`, url]);
    curlMs += performance.now() - t0;
  }

  // The restore engine's own speed: the same generation's disks restored to local sparse files.
  let fileMs = 0;
  for (const d of manifest.disks) {
    const out = path.join(work, `disk-${d.name}.img`);
    fileMs += vmbkp(['restore', '--repo', repo, '--set', vm, '--generation', '1', '--disk', d.name, '--to', `file:${out}`]).ms;
    fs.rmSync(out);
  }

  const rows = [];
  for (let i = 1; i <= Number(opts.runs); i++) {
    log(`restore run ${i}`);
    const r = vmbkp(['restore', '--repo', repo, ...vc, '--set', vm, '--name', `bench-restore-${i}`, '--json']);
    const res = JSON.parse(r.out);
    const writeMs = res.disks.reduce((n, d) => n + d.writeMs, 0);
    const verifyMs = res.disks.reduce((n, d) => n + d.verifyMs, 0);
    rows.push({ wall: r.ms, writeMs, verifyMs });
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rate = (bytes, ms) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
  const wall = median(rows.map((r) => r.wall));
  const write = median(rows.map((r) => r.writeMs));
  const verify = median(rows.map((r) => r.verifyMs));
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write([
    `## VM restore, https transport (lab, ${opts.disks} × ${opts['disk-size']} disks, fill ${opts.fill})`,
    '',
    `${os.cpus().length} × ${cpu}, Node ${process.version}; median of ${rows.length} runs.`,
    `Capacity ${(capacity / MiB).toFixed(0)} MiB, of which ${(nonZero / MiB).toFixed(0)} MiB in non-zero chunks (backup read ${(data / MiB).toFixed(0)} MiB).`,
    '',
    '| step | time | capacity / time |',
    '| --- | --- | --- |',
    `| whole \`vmbkp restore\` (create VM, write, read back, check) | ${(wall / 1000).toFixed(2)} s | ${rate(capacity, wall)} |`,
    `| disks written (PUT, holes sent as zeros) | ${(write / 1000).toFixed(2)} s | ${rate(capacity, write)} |`,
    `| disks read back and checked (GET + SHA-256) | ${(verify / 1000).toFixed(2)} s | ${rate(capacity, verify)} |`,
    `| limit: the same bytes read by curl from /folder | ${(curlMs / 1000).toFixed(2)} s | ${rate(capacity, curlMs)} |`,
    `| beside: the same disks restored to local files (\`restore --disk … --to file:\`, one command per disk) | ${(fileMs / 1000).toFixed(2)} s | ${rate(capacity, fileMs)} |`,
    '',
  ].join('\n'));
} finally {
  child.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}

/** A session cookie for curl: RetrieveServiceContent and Login through SOAP (the request goes to curl on stdin). */
function login(info) {
  const body = (inner) => `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>${inner}</soapenv:Body></soapenv:Envelope>`;
  const post = (xml) => execFileSync('curl', ['-sk', '-D', '-', '-H', 'Content-Type: text/xml', '--data-binary', '@-', info.url], { input: xml, encoding: 'utf8' });
  const sc = post(body('<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>'));
  const sm = /<sessionManager type="SessionManager">([^<]+)</.exec(sc)?.[1] ?? 'SessionManager';
  const res = post(body(`<Login xmlns="urn:vim25"><_this type="SessionManager">${sm}</_this><userName>${info.user}</userName><password>${info.password}</password></Login>`));
  const cookie = /set-cookie: (vmware_soap_session=[^;]+)/i.exec(res)?.[1];
  if (!cookie) throw new Error('login for curl failed');
  return cookie;
}
