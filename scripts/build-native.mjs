#!/usr/bin/env node
// Builds native/aead.c into build/aead.node with the C compiler and the headers of the node
// running this (Debian's nodejs ships them in /usr/include/node). Without a compiler the
// addon is skipped with a warning: vmbkp then seals through Node's crypto (same bytes, slower).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'native/aead.c');
const target = path.join(root, 'build/aead.node');
const include = path.resolve(path.dirname(process.execPath), '../include/node');

if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) process.exit(0);
mkdirSync(path.dirname(target), { recursive: true });
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-Wall', '-Werror', `-I${include}`, '-o', target, source], { stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(`warning: building ${path.relative(root, target)} failed (${r.error ? r.error.message : `${cc} exited ${r.status}`}); encryption will use Node's crypto, which is slower\n`);
}
