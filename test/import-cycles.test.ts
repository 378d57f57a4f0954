/**
 * No module of src/ imports itself through others. Read from the TypeScript sources, not
 * from dist: `import type` is erased by the compiler, yet a type-only cycle still ties the
 * modules together for a reader and for the layering rule.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** The layers of docs/design.md, top first: a module imports from its own layer or those below it. */
const LAYERS = ['cli', 'server', 'app', 'recipe', 'jobs', 'providers', 'engine', 'files', 'repository', 'storage', 'sources', 'nbd', 'vsphere'];

/** A module's layer: its folder's place in LAYERS; files directly in src/ sit below all layers. */
function layerOf(module: string): number {
  const top = module.split('/')[0]!;
  return module.includes('/') ? LAYERS.indexOf(top) : LAYERS.length;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

// `import … from '…'`, `import '…'`, `export … from '…'` and `import('…')`, over several lines.
const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** The modules of src/ a file imports, as paths relative to src/. */
export function localImports(file: string, text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec || !spec.startsWith('.')) continue;
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
    out.add(path.relative(SRC, target));
  }
  return [...out];
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const members: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        members.push(w);
      } while (w !== v);
      if (members.length > 1 || graph.get(v)?.includes(v)) found.push(members.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

it('cycles() finds a cycle through three modules and a self-import, and nothing in a tree', () => {
  const graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', []], ['e', ['e']], ['f', ['d']]]);
  assert.deepEqual(cycles(graph).map((c) => c.join(' ')).sort(), ['a b c', 'e']);
  assert.deepEqual(cycles(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]])), []);
});

it('localImports() sees type-only, side-effect, re-export and dynamic imports', () => {
  const file = path.join(SRC, 'nbd', 'x.ts');
  const text = [
    "import type {\n  A,\n  B,\n} from './a.js';",
    "import './b.js';",
    "export { c } from '../c/c.js';",
    "const d = await import('./d.js');",
    "import fs from 'node:fs';",
  ].join('\n');
  assert.deepEqual(localImports(file, text).sort(), ['c/c.ts', 'nbd/a.ts', 'nbd/b.ts', 'nbd/d.ts']);
});

it('src/ has no import cycles', () => {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) graph.set(path.relative(SRC, file), localImports(file, readFileSync(file, 'utf8')));
  assert.ok(graph.size > 100, `read ${graph.size} modules of ${SRC}`);
  const found = cycles(graph).map((members) => members.join(' '));
  assert.deepEqual(found, [], `import cycles in src/:\n${found.join('\n')}`);
});

it('imports point down the layers only', () => {
  const upward: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(SRC, file);
    assert.ok(layerOf(from) >= 0, `${from} is in no layer of docs/design.md`);
    for (const to of localImports(file, readFileSync(file, 'utf8'))) {
      if (layerOf(to) < layerOf(from)) upward.push(`${from} → ${to}`);
    }
  }
  assert.deepEqual(upward, [], `imports pointing up:\n${upward.join('\n')}`);
});
