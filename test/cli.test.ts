/** The command line as an administrator meets it: npx from the repository root, help, exit codes for usage errors. */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { ROOT, run, vmbkp } from './helpers.js';

const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

it('npx vmbkp works from the repository root without installing anything', async () => {
  const r = await run('npx', ['--no-install', 'vmbkp', '--version'], { cwd: ROOT });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
});

// npx in the repository root runs the prepare script (the build) when npm's cache is cold, as on
// CI, while other test files are loading dist/: a build with nothing changed must write nothing.
it('a repeat build leaves dist/ untouched', async () => {
  const built = path.join(ROOT, 'dist/src/cli/main.js');
  const before = statSync(built).mtimeMs;
  const r = await run('npm', ['run', '--silent', 'build'], { cwd: ROOT });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(built).mtimeMs, before);
});

it('help lists every command; an unknown command or option is a one-line usage error (exit 2)', async () => {
  const help = await vmbkp(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['init', 'backup', 'list', 'restore', 'verify', 'prune', 'gc', 'unlock']) assert.match(help.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  const unknown = await vmbkp(['bakup']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^vmbkp: error: unknown command 'bakup' \(Did you mean backup\?\)\n$/);
  const badOpt = await vmbkp(['list', '--nope']);
  assert.equal(badOpt.code, 2);
  assert.match(badOpt.stderr, /^vmbkp: error: unknown option '--nope'\n$/);
});
