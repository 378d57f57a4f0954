#!/usr/bin/env node
// Builds the native addons with the C compiler and the headers of the node running this
// (Debian's nodejs ships them in /usr/include/node). Without a compiler an addon is skipped
// with a warning and vmbkp works without it:
//   native/aead.c → build/aead.node: without it, encryption goes through Node's crypto (same bytes, slower);
//   native/seek.c → build/seek.node: without it, `file:` disks are read whole, holes included (same backup, slower).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const include = path.resolve(path.dirname(process.execPath), '../include/node');
const cc = process.env.CC || 'cc';

const addons = [
  { name: 'aead', without: "encryption will use Node's crypto, which is slower" },
  { name: 'seek', without: 'file: disks will be read whole, holes included, which is slower for sparse images' },
];

for (const { name, without } of addons) {
  const source = path.join(root, `native/${name}.c`);
  const target = path.join(root, `build/${name}.node`);
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) continue;
  mkdirSync(path.dirname(target), { recursive: true });
  const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-Wall', '-Werror', `-I${include}`, '-o', target, source], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`warning: building ${path.relative(root, target)} failed (${r.error ? r.error.message : `${cc} exited ${r.status}`}); ${without}\n`);
  }
}
