#!/usr/bin/env node
// The fast subset of the tests (`npm run test:unit`): the files that need no external server
// or tool (no nbdkit, qemu-nbd, qemu-img, nbdcopy, openssl, the vSphere lab, restic or borg)
// and finish in seconds, so that the whole subset takes well under a minute on a 2-CPU
// machine. `npm test` still runs every file.
//
// The list is explicit, one file a line, so that a new test file joins the subset by a
// one-line change here. Left out although they need no server, because they are the slowest:
// crash.test (kills and restarts the CLI many times), bad-input.test and repo-password.test
// (dozens of CLI runs each) and roundtrip.test (a 512 MiB image through four generations).
//
//   node scripts/test-unit.mjs [--list] [extra node --test options]   (after `npm run build`)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const UNIT = [
  'aead',
  'change-trust-unit',
  'cli',
  'lazy-load',
  'kek-early',
  'completion',
  'corruption',
  'disk-image',
  'encryption-unit',
  's3-unit',
  'select-generation',
  'server-schedule-unit',
  'commit-lock',
  'export-backend',
  'extents',
  'sparse-file',
  'disk-index',
  'index-streamed',
  'files-unit',
  'format',
  'help-audit',
  'helper-process',
  'import-cycles',
  'keys-cli',
  'log-output',
  'lookup-index',
  'machine-files',
  'machine-provider',
  'nbd-fuzz',
  'nfc-unit',
  'process-identity',
  'progress',
  'rate-limit',
  'recipe',
  'repository-long-running',
  'retention',
  'storage-faults',
  'storage-local',
  'storage-memory',
  'task-stall-unit',
  'stored-machine',
  'unchanged-disk',
  'vsphere-create-vm',
  'vsphere-unit',
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const files = UNIT.map((name) => path.join('dist/test', `${name}.test.js`));
const args = process.argv.slice(2);

if (args.includes('--list')) {
  process.stdout.write(`${files.join('\n')}\n`);
} else {
  // A file missing from dist/ is a renamed or removed test: say so rather than run less.
  const missing = files.filter((f) => !existsSync(path.join(root, f)));
  if (missing.length) {
    process.stderr.write(`test-unit: not built or no longer there (build first, or fix the list in scripts/test-unit.mjs):\n  ${missing.join('\n  ')}\n`);
    process.exit(2);
  }
  const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...args, ...files], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code, signal) => { process.exitCode = code ?? (signal ? 1 : 0); });
}
