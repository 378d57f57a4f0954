/**
 * The CLI loads what a command needs, not every command's modules: `--help` none of the
 * app, repository or storage layers; a backup to a local directory not the AWS SDK nor the
 * XML parser, and without a config file not the YAML parser nor the config's schema. Every module the process resolves is recorded
 * by a resolve hook (module.register) given with --import.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { CLI, makeImage, run, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;

before(async () => {
  ({ dir, cleanup } = await tempDir('vmbkp-lazy-'));
  await writeFile(path.join(dir, 'hook.mjs'), [
    "import { appendFileSync } from 'node:fs';",
    'export async function resolve(specifier, context, next) {',
    '  const r = await next(specifier, context);',
    "  appendFileSync(process.env.VMBKP_TEST_MODULE_LOG, r.url + '\\n');",
    '  return r;',
    '}',
  ].join('\n'));
  await writeFile(path.join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister('./hook.mjs', import.meta.url);\n");
});
after(() => cleanup());

/** Runs the CLI with the hook; returns the exit code and every module URL it resolved. */
async function loaded(name: string, args: string[]): Promise<{ code: number | null; stderr: string; modules: string[] }> {
  const log = path.join(dir, `${name}.log`);
  await writeFile(log, '');
  // No config file: an empty XDG_CONFIG_HOME (and /etc/vmbkp/config.yaml is not there on a test machine).
  const env = { VMBKP_TEST_MODULE_LOG: log, XDG_CONFIG_HOME: path.join(dir, 'no-config') };
  const r = await run(process.execPath, ['--import', path.join(dir, 'register.mjs'), CLI, ...args], { env });
  return { code: r.code, stderr: r.stderr, modules: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

const matching = (modules: string[], re: RegExp) => modules.filter((m) => re.test(m));

it('--help loads the command line and commander only', async () => {
  const r = await loaded('help', ['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(matching(r.modules, /\/dist\/src\/cli\/main\.js$/).length === 1, 'the hook saw the CLI load');
  assert.deepEqual(matching(r.modules, /\/dist\/src\/((repository|storage|engine|jobs|providers|sources|vsphere|nbd)\/|recipe\/(?!password\.js))/), []);
  // Of the app layer, only where a repository password comes from (cli/repo-password.ts's types and defaults).
  assert.deepEqual(matching(r.modules, /\/dist\/src\/app\//).map((m) => path.basename(m)).sort(), ['repository-password.js', 'secret-command.js']);
  assert.deepEqual(matching(r.modules, /node_modules\/(@aws-sdk|@smithy|zod|yaml|cli-progress|zstd-napi|fast-xml-parser)\//), []);
});

it('a backup to a local directory loads neither the AWS SDK nor, without a config file, the YAML parser', async () => {
  const img = path.join(dir, 'disk.img');
  await makeImage(img, '1M', 1);
  const repo = path.join(dir, 'repo');
  const init = await loaded('init', ['init', '--repo', repo]);
  assert.equal(init.code, 0, init.stderr);
  const r = await loaded('backup', ['backup', '--repo', repo, '--set', 's', `sda=file:${img}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(matching(r.modules, /\/dist\/src\/repository\/repository\.js$/).length > 0, 'the hook saw the repository load');
  for (const m of [init, r]) assert.deepEqual(matching(m.modules, /node_modules\/(@aws-sdk|@smithy|yaml)\//), []);
  // Nor the XML parser (its vSphere modules may load for their types of stored VMs, not it),
  // nor, without a config file, the config's parser and schema.
  assert.deepEqual(matching(r.modules, /node_modules\/fast-xml-parser\//), []);
  assert.deepEqual(matching(r.modules, /\/dist\/src\/app\/config-(parse|schema)\.js$/), []);
});
