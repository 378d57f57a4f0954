#!/usr/bin/env node
// npm run lab [-- FLAGS]: builds the vSphere lab (lab/*.go) into .cache/lab/vmbkp-lab when
// it is missing or older than a source file, then runs it with FLAGS, forwarding stdio
// and signals. `node scripts/lab.mjs --build-only` only builds and prints the binary path.
// The lab's first stdout line is its JSON description, so build output goes to stderr.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LAB = path.join(ROOT, 'lab');
const BIN = path.join(ROOT, '.cache', 'lab', 'vmbkp-lab');
const GOPATH = '/usr/share/gocode';
const GOVMOMI = path.join(GOPATH, 'src', 'github.com', 'vmware', 'govmomi');
const PACKAGES = 'golang-go golang-github-vmware-govmomi-dev';

function die(message) {
  process.stderr.write(`vmbkp lab: ${message}\n`);
  process.exit(1);
}

function stale() {
  if (!existsSync(BIN)) return true;
  const built = statSync(BIN).mtimeMs;
  return readdirSync(LAB)
    .filter((name) => name.endsWith('.go'))
    .some((name) => statSync(path.join(LAB, name)).mtimeMs > built);
}

function build() {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).error) {
    die(`\`go\` is not installed; install the Debian packages ${PACKAGES}`);
  }
  if (!existsSync(GOVMOMI)) {
    die(`govmomi is missing at ${GOVMOMI}; install the Debian packages ${PACKAGES}`);
  }
  mkdirSync(path.dirname(BIN), { recursive: true });
  // Build beside the binary and rename, so concurrent runs never execute a half-written file.
  const tmp = `${BIN}.${process.pid}.tmp`;
  const env = {
    ...process.env,
    GOPATH,
    GO111MODULE: 'off',
    GOFLAGS: '',
    GOCACHE: path.join(ROOT, '.cache', 'go-build'),
  };
  const r = spawnSync('go', ['build', '-o', tmp, '.'], { cwd: LAB, env, stdio: ['ignore', 2, 2] });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    die(`building lab/ failed${r.error ? `: ${r.error.message}` : ''}`);
  }
  renameSync(tmp, BIN);
}

const args = process.argv.slice(2);
const buildOnly = args.includes('--build-only');
if (stale()) build();
if (buildOnly) {
  process.stdout.write(`${BIN}\n`);
  process.exit(0);
}

const child = spawn(BIN, args, { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
// `npm run lab &` then `kill %1` stops npm and its shell but not this process: watch the
// parent and stop the lab when it is gone, so a lab never outlives what started it.
const parent = process.ppid;
const watchdog = setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch {
    child.kill('SIGTERM');
  }
}, 500);
watchdog.unref();
child.on('error', (err) => die(`cannot run ${BIN}: ${err.message}`));
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
