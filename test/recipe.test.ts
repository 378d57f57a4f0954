import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { InputError } from '../src/errors.js';
import { globToRegExp, isGlob } from '../src/recipe/glob.js';
import { recipeJsonSchema } from '../src/recipe/json-schema.js';
import { loadRecipe, parseRecipe, recipeIssues } from '../src/recipe/load.js';
import { resolvePassword } from '../src/recipe/password.js';
import { parseRate } from '../src/recipe/rate.js';
import { type BackupRecipe, backupRecipeSchema, restoreRecipeSchema } from '../src/recipe/schema.js';
import { type InventoryVm, type TargetSpec, selectVms } from '../src/recipe/select.js';

const MiB = 1024 * 1024;

const full = `# every key of a backup recipe
version: 1
kind: backup
connection:
  vcenter: https://vc.example.com
  user: backup@vsphere.local
  passwordFile: /etc/vmbkp/pw
  thumbprint: "${'AB:'.repeat(31)}AB"
repository: /backup/repo
targets:
  vms: [web01, "db-*", vm-42]
  folders: ["DC0/vm/production"]
  exclude: ["*-template", "test-*"]
  excludeDisks: { web01: [2001] }
policy:
  mode: incr
  quiesce: true
  memory: false
  enableCbt: true
  transport: vddk
  vddk: { libdir: /opt/vddk, transports: "hotadd:nbdssl" }
  compressionLevel: 3
  retention: { keepLast: 7, keepDaily: 7, keepWeekly: 4, keepMonthly: 6 }
concurrency:
  vms: 3
  disksPerVm: 2
  snapshots: 2
bandwidth: 200MiB/s
hooks:
  pre: ["/usr/local/bin/pre.sh"]
  post: [["/usr/bin/logger", "-t", "vmbkp"]]
report:
  json: /var/log/vmbkp/last.json
  summary: false
`;

/** Just the required keys; the defaults fill in the rest. */
const minimal = `version: 1
kind: backup
connection:
  vcenter: vc.example.com
  user: backup
  passwordEnv: VMBKP_VCENTER_PASSWORD
repository: /backup/repo
targets:
  vms: [web01]
`;

describe('recipe: valid', () => {
  it('a full recipe parses to the typed model', () => {
    const expected: BackupRecipe = {
      version: 1,
      kind: 'backup',
      connection: {
        vcenter: 'https://vc.example.com', user: 'backup@vsphere.local', passwordFile: '/etc/vmbkp/pw', thumbprint: `${'AB:'.repeat(31)}AB`,
      },
      repository: { path: '/backup/repo' },
      targets: { vms: ['web01', 'db-*', 'vm-42'], folders: ['DC0/vm/production'], exclude: ['*-template', 'test-*'], excludeDisks: { web01: [2001] } },
      policy: {
        mode: 'incr', quiesce: true, memory: false, enableCbt: true, transport: 'vddk',
        vddk: { libdir: '/opt/vddk', transports: 'hotadd:nbdssl' }, compressionLevel: 3,
        retention: { last: 7, daily: 7, weekly: 4, monthly: 6 },
      },
      concurrency: { vms: 3, disksPerVm: 2, snapshots: 2 },
      bandwidth: 200 * MiB,
      hooks: { pre: ['/usr/local/bin/pre.sh'], post: [['/usr/bin/logger', '-t', 'vmbkp']] },
      report: { json: '/var/log/vmbkp/last.json', summary: false },
    };
    assert.deepEqual(parseRecipe(full, 'full.yaml'), expected);
  });

  it('defaults fill in what a minimal recipe leaves out', () => {
    const expected: BackupRecipe = {
      version: 1,
      kind: 'backup',
      connection: { vcenter: 'vc.example.com', user: 'backup', passwordEnv: 'VMBKP_VCENTER_PASSWORD' },
      repository: { path: '/backup/repo' },
      targets: { vms: ['web01'], folders: [], exclude: [], excludeDisks: {} },
      policy: { mode: 'auto', quiesce: false, memory: false, enableCbt: false, transport: 'https' },
      concurrency: { vms: 1, disksPerVm: 1, snapshots: 1 },
      hooks: { pre: [], post: [] },
      report: { summary: true },
    };
    assert.deepEqual(parseRecipe(minimal, 'min.yaml'), expected);
  });

  it('repository: a path, or a mapping with the path and one password source; both parse to the mapping', () => {
    const withRepo = (...lines: string[]) => minimal.replace('repository: /backup/repo', lines.join('\n'));
    assert.deepEqual(parseRecipe(withRepo('repository: { path: /backup/repo }'), 'r.yaml').repository, { path: '/backup/repo' });
    for (const [key, value] of [['passwordFile', '/etc/vmbkp/repo.pw'], ['passwordEnv', 'VMBKP_PW'], ['passwordCommand', 'pass show vmbkp/repo']]) {
      assert.deepEqual(parseRecipe(withRepo('repository:', '  path: /backup/repo', `  ${key}: ${value}`), 'r.yaml').repository, { path: '/backup/repo', [key!]: value });
    }
  });

  it('concurrency.snapshots defaults to concurrency.vms', () => {
    const r = parseRecipe(`${minimal}concurrency: { vms: 4 }\n`, 'r.yaml');
    assert.equal(r.kind, 'backup');
    if (r.kind === 'backup') assert.deepEqual(r.concurrency, { vms: 4, disksPerVm: 1, snapshots: 4 });
  });

  it('a restore recipe parses', () => {
    const r = parseRecipe(`version: 1
kind: restore
connection: { vcenter: vc, user: u, passwordFile: /pw, insecure: true }
repository: /backup/repo
restores:
  - { set: web01, generation: latest, name: web01-restored, network: { "VM Network": isolated }, powerOn: true }
  - { set: db01, generation: 12, name: db01-copy, datastore: ds2, folder: DC0/vm/restored }
`, 'restore.yaml');
    assert.deepEqual(r, {
      version: 1, kind: 'restore',
      connection: { vcenter: 'vc', user: 'u', passwordFile: '/pw', insecure: true },
      repository: { path: '/backup/repo' },
      transport: 'https',
      restores: [
        { set: 'web01', generation: 'latest', name: 'web01-restored', network: { 'VM Network': 'isolated' }, powerOn: true, keepIdentity: false, overwrite: false },
        { set: 'db01', generation: 12, name: 'db01-copy', datastore: 'ds2', folder: 'DC0/vm/restored', powerOn: false, keepIdentity: false, overwrite: false },
      ],
      report: { summary: true },
    });
  });
});

describe('recipe: invalid', () => {
  /** The minimal recipe with line `n` (1-based) replaced by `lines` (none: removed). */
  const edit = (n: number, ...lines: string[]) => {
    const all = minimal.split('\n');
    all.splice(n - 1, 1, ...lines);
    return all.join('\n');
  };
  const table: { name: string; text: string; path: string; line: number; message: string }[] = [
    { name: 'unknown key, with a suggestion', text: edit(3, 'conection: {}', 'connection:'), path: 'conection', line: 3, message: 'unknown key "conection" (did you mean "connection"?)' },
    { name: 'unknown nested key', text: `${minimal}policy:\n  mdoe: full\n`, path: 'policy.mdoe', line: 11, message: 'policy: unknown key "mdoe" (did you mean "mode"?)' },
    { name: 'unknown key, nothing like it', text: `${minimal}colour: blue\n`, path: 'colour', line: 10, message: 'unknown key "colour"' },
    { name: 'wrong type', text: `${minimal}policy:\n  quiesce: "yes"\n`, path: 'policy.quiesce', line: 11, message: 'policy.quiesce: must be true, false or "required" (got "yes")' },
    { name: 'wrong type of a flag', text: `${minimal}policy:\n  memory: "yes"\n`, path: 'policy.memory', line: 11, message: 'policy.memory: must be true or false (got "yes")' },
    { name: 'missing repository: the line of the parent mapping', text: edit(7), path: 'repository', line: 1, message: 'repository is required' },
    { name: 'missing nested key', text: edit(5), path: 'connection.user', line: 3, message: 'connection.user is required' },
    { name: 'bad bandwidth syntax', text: `${minimal}bandwidth: 200 MB\n`, path: 'bandwidth', line: 10, message: 'bandwidth: "200 MB" is not a rate like 200MiB/s' },
    { name: 'bandwidth as a bare number', text: `${minimal}bandwidth: 200\n`, path: 'bandwidth', line: 10, message: 'bandwidth: must be a rate like 200MiB/s (got 200)' },
    { name: 'zero bandwidth', text: `${minimal}bandwidth: 0MiB/s\n`, path: 'bandwidth', line: 10, message: 'bandwidth: "0MiB/s" must be at least 1B/s' },
    {
      name: 'both passwordFile and passwordEnv', text: edit(6, '  passwordEnv: P', '  passwordFile: /pw'),
      path: 'connection.passwordEnv', line: 6, message: 'connection.passwordEnv: give passwordFile or passwordEnv, not both',
    },
    { name: 'no password', text: edit(6), path: 'connection', line: 3, message: 'connection: needs passwordFile or passwordEnv' },
    {
      name: 'thumbprint with insecure', text: edit(6, '  passwordEnv: P', `  thumbprint: "${'0f'.repeat(20)}"`, '  insecure: true'),
      path: 'connection.insecure', line: 8, message: 'connection.insecure: thumbprint and insecure: true exclude each other',
    },
    { name: 'bad thumbprint', text: edit(6, '  passwordEnv: P', '  thumbprint: "AB:CD"'), path: 'connection.thumbprint', line: 7, message: 'connection.thumbprint: must be a SHA-256 or SHA-1 certificate thumbprint in hex (got "AB:CD")' },
    { name: 'http vCenter', text: edit(4, '  vcenter: http://vc'), path: 'connection.vcenter', line: 4, message: 'connection.vcenter: must be an https:// URL or a host name (got "http://vc")' },
    { name: 'concurrency 0', text: `${minimal}concurrency:\n  vms: 2\n  disksPerVm: 0\n`, path: 'concurrency.disksPerVm', line: 12, message: 'concurrency.disksPerVm: must be at least 1 (got 0)' },
    { name: 'concurrency not whole', text: `${minimal}concurrency: { vms: 1.5 }\n`, path: 'concurrency.vms', line: 10, message: 'concurrency.vms: must be a whole number (got 1.5)' },
    {
      name: 'keepLast 0', text: `${minimal}policy:\n  retention:\n    keepLast: 0\n    keepDaily: 7\n`,
      path: 'policy.retention.keepLast', line: 12, message: 'policy.retention.keepLast: must be at least 1 (got 0)',
    },
    { name: 'retention without keepLast', text: `${minimal}policy:\n  retention:\n    keepDaily: 7\n`, path: 'policy.retention.keepLast', line: 11, message: 'policy.retention.keepLast is required' },
    { name: 'bad mode', text: `${minimal}policy:\n  mode: fast\n`, path: 'policy.mode', line: 11, message: 'policy.mode: must be one of auto, full, diff, incr (got "fast")' },
    { name: 'compression level out of range', text: `${minimal}policy: { compressionLevel: 22 }\n`, path: 'policy.compressionLevel', line: 10, message: 'policy.compressionLevel: must be at most 19 (got 22)' },
    { name: 'diffEvery 0', text: `${minimal}policy: { diffEvery: 0 }\n`, path: 'policy.diffEvery', line: 10, message: 'policy.diffEvery: must be at least 1 (got 0)' },
    { name: 'vddk settings with https', text: `${minimal}policy:\n  vddk: { libdir: /opt/vddk }\n`, path: 'policy.vddk', line: 11, message: 'policy.vddk: only applies with transport: vddk' },
    { name: 'no targets', text: edit(9, '  exclude: [a]'), path: 'targets', line: 8, message: 'targets: needs vms or folders to back up' },
    { name: 'bad glob', text: edit(9, '  vms: [web01, "[z-a]*"]'), path: 'targets.vms[1]', line: 9, message: 'targets.vms[1]: "[z-a]*" is not a valid glob: a range in [...] runs backwards' },
    { name: 'disk keys are numbers', text: `${minimal}  excludeDisks:\n    web01: [2001, scsi0]\n`, path: 'targets.excludeDisks.web01[1]', line: 11, message: 'targets.excludeDisks.web01[1]: must be a number (got "scsi0")' },
    { name: 'empty hook', text: `${minimal}hooks:\n  post:\n    - []\n`, path: 'hooks.post[0]', line: 12, message: 'hooks.post[0]: must not be empty' },
    { name: 'hook of the wrong type', text: `${minimal}hooks:\n  pre:\n    - 42\n`, path: 'hooks.pre[0]', line: 12, message: 'hooks.pre[0]: must be a command string or a list of a program and its arguments' },
    { name: 'version', text: edit(1, 'version: 2'), path: 'version', line: 1, message: 'version: must be 1 (got 2)' },
    { name: 'unknown kind', text: edit(2, 'kind: archive'), path: 'kind', line: 2, message: 'kind: must be one of backup, restore (got "archive")' },
    { name: 'no kind', text: edit(2), path: 'kind', line: 1, message: 'kind is required (backup or restore)' },
    { name: 'YAML syntax error', text: edit(9, '  vms: [web01'), path: '', line: 10, message: 'YAML syntax error: ' },
    { name: 'duplicate key', text: `${minimal}repository: /other\n`, path: '', line: 10, message: 'YAML syntax error: Map keys must be unique' },
    { name: 'empty file', text: '# nothing\n', path: '', line: 1, message: 'the recipe is empty' },
    { name: 'not a mapping', text: '- a\n- b\n', path: '', line: 1, message: 'the recipe must be a mapping of keys like version, kind, connection (got a list)' },
    {
      name: 'repository: two password sources', text: edit(7, 'repository:', '  path: /backup/repo', '  passwordFile: /etc/vmbkp/repo.pw', '  passwordCommand: pass show vmbkp'),
      path: 'repository.passwordCommand', line: 10, message: 'repository.passwordCommand: give one of passwordFile, passwordEnv, passwordCommand, not passwordFile and passwordCommand',
    },
    {
      name: 'repository: a mapping without its path', text: edit(7, 'repository: { passwordEnv: REPO_PW }'),
      path: 'repository', line: 7, message: 'repository: must be the repository\'s path, or a mapping with its path and at most one of passwordFile, passwordEnv, passwordCommand (got a mapping)',
    },
    { name: 'repository: a number', text: edit(7, 'repository: 5'), path: 'repository', line: 7, message: 'repository: must be the repository\'s path, or a mapping with its path' },
    {
      name: 'repository: unknown key, with a suggestion', text: edit(7, 'repository:', '  path: /backup/repo', '  passwordfile: /pw'),
      path: 'repository.passwordfile', line: 9, message: 'repository: unknown key "passwordfile" (did you mean "passwordFile"?)',
    },
    {
      name: 'restore: generation', text: `version: 1\nkind: restore\nconnection: { vcenter: vc, user: u, passwordEnv: P }\nrepository: /r\nrestores:\n  - set: a\n    name: b\n    generation: newest\n`,
      path: 'restores[0].generation', line: 8, message: 'restores[0].generation: must be a generation number, "latest", "latest~N", a date or date-time, or an id prefix',
    },
  ];

  for (const t of table) {
    it(t.name, () => {
      const issues = recipeIssues(t.text);
      const first = issues[0];
      assert.ok(first, 'an issue');
      assert.equal(first.path, t.path);
      assert.equal(first.line, t.line);
      assert.ok(first.message.startsWith(t.message), `message ${JSON.stringify(first.message)} should start with ${JSON.stringify(t.message)}`);
      assert.throws(() => parseRecipe(t.text, '/etc/r.yaml'), (err: unknown) => {
        assert.ok(err instanceof InputError);
        assert.equal(err.code, 'INPUT_INVALID');
        assert.ok(err.message.startsWith(`recipe /etc/r.yaml: line ${t.line}: ${t.message}`), err.message);
        assert.ok(!err.message.includes('\n'), 'one line');
        return true;
      });
    });
  }

  it('collects every problem, in file order, and the message counts the rest', () => {
    const text = `version: 1
kind: backup
conection: {}
connection:
  vcenter: vc
  user: u
  passwordEnv: P
targets:
  vms: [a]
policy:
  mode: fast
bandwidth: 200 MB
`;
    assert.deepEqual(recipeIssues(text), [
      { path: 'repository', line: 1, message: 'repository is required' },
      { path: 'conection', line: 3, message: 'unknown key "conection" (did you mean "connection"?)' },
      { path: 'policy.mode', line: 11, message: 'policy.mode: must be one of auto, full, diff, incr (got "fast")' },
      { path: 'bandwidth', line: 12, message: 'bandwidth: "200 MB" is not a rate like 200MiB/s' },
    ]);
    assert.throws(() => parseRecipe(text, 'r.yaml'), { message: 'recipe r.yaml: line 1: repository is required (and 3 more)' });
  });

  it('a valid recipe has no issues', () => {
    assert.deepEqual(recipeIssues(full), []);
  });
});

describe('recipe: files and passwords', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'vmbkp-recipe-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('loadRecipe reads a file and names it in errors', async () => {
    const file = join(dir, 'nightly.yaml');
    await writeFile(file, minimal);
    assert.deepEqual((await loadRecipe(file)).repository, { path: '/backup/repo' });
    await writeFile(file, `${minimal}bandwidth: fast\n`);
    await assert.rejects(loadRecipe(file), { name: 'InputError', message: `recipe ${file}: line 10: bandwidth: "fast" is not a rate like 200MiB/s` });
  });

  it('a missing recipe file is an InputError naming it', async () => {
    const file = join(dir, 'absent.yaml');
    await assert.rejects(loadRecipe(file), (err: unknown) => err instanceof InputError && err.message === `recipe ${file} does not exist`);
  });

  it('resolvePassword reads the first line of the file', async () => {
    const file = join(dir, 'pw');
    await writeFile(file, 's3cret pass\nsecond line\n', { mode: 0o600 });
    assert.equal(await resolvePassword({ passwordFile: file }), 's3cret pass');
  });

  it('resolvePassword reads the environment variable', async () => {
    assert.equal(await resolvePassword({ passwordEnv: 'PW' }, { PW: 'hunter2' }), 'hunter2');
  });

  it('password errors name the file or variable, never the secret', async () => {
    const empty = join(dir, 'empty-pw');
    await writeFile(empty, '\nsecret-on-line-2\n');
    await assert.rejects(resolvePassword({ passwordFile: empty }), (err: unknown) =>
      err instanceof InputError && err.message.includes(empty) && !err.message.includes('secret-on-line-2'));
    const absent = join(dir, 'no-such-pw');
    await assert.rejects(resolvePassword({ passwordFile: absent }), (err: unknown) => err instanceof InputError && err.message.includes(absent));
    await assert.rejects(resolvePassword({ passwordEnv: 'VMBKP_TEST_UNSET' }, {}), (err: unknown) =>
      err instanceof InputError && err.message.includes('VMBKP_TEST_UNSET') && err.message.includes('not set'));
    await assert.rejects(resolvePassword({ passwordEnv: 'PW' }, { PW: '' }), (err: unknown) => err instanceof InputError && err.message.includes('PW'));
  });
});

describe('parseRate', () => {
  const good: [string, number][] = [
    ['200MiB/s', 200 * MiB], ['1B/s', 1], ['512 B/s', 512], ['1KB/s', 1000], ['1kB/s', 1000], ['1KiB/s', 1024],
    ['100MB/s', 100e6], ['1.5GB/s', 1.5e9], ['2GiB/s', 2 * 1024 ** 3], ['0.5MiB/s', MiB / 2], ['100 MB/s', 100e6],
  ];
  for (const [text, bytes] of good) it(`${text} is ${bytes} bytes/s`, () => assert.equal(parseRate(text), bytes));

  const bad = ['200 MB', '200MiB', 'MiB/s', '-1MiB/s', '0MiB/s', '0.1B/s', '1 mib/s', '1TB/s', '1e3B/s', '', '1  MB/s', ' 1MB/s'];
  for (const text of bad) {
    it(`${JSON.stringify(text)} is not a rate`, () => assert.throws(() => parseRate(text), (err: unknown) => err instanceof InputError && err.message.includes(JSON.stringify(text))));
  }
});

describe('globs', () => {
  const table: [string, string, boolean][] = [
    ['web*', 'web01', true], ['web*', 'aweb01', false], ['*', '', true], ['db-?', 'db-1', true], ['db-?', 'db-12', false],
    ['[abc]x', 'bx', true], ['[abc]x', 'dx', false], ['[a-c]x', 'bx', true], ['[!a-c]x', 'bx', false], ['[!a-c]x', 'dx', true],
    ['[]]', ']', true], ['web.01', 'web.01', true], ['web.01', 'webX01', false], ['a+b(c)', 'a+b(c)', true], ['[x', '[x', true],
    ['*-template', 'centos-template', true], ['Web01', 'web01', false], ['a\\b', 'a\\b', true], ['[\\]', '\\', true],
  ];
  for (const [glob, name, match] of table) {
    it(`${glob} ${match ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => assert.equal(globToRegExp(glob).test(name), match));
  }
  it('knows glob characters', () => {
    assert.deepEqual(['web01', 'vm-42', 'db-*', 'a?', '[ab]'].map(isGlob), [false, false, true, true, true]);
  });
});

describe('selectVms', () => {
  const inventory: InventoryVm[] = [
    { name: 'web01', moref: 'vm-10', folderPaths: ['DC0/vm/production/web'] },
    { name: 'web02', moref: 'vm-11', folderPaths: ['DC0/vm/production/web'] },
    { name: 'db-1', moref: 'vm-20', folderPaths: ['DC0/vm/production'] },
    { name: 'db-2', moref: 'vm-21', folderPaths: ['DC0/vm/staging'] },
    { name: 'centos-template', moref: 'vm-30', folderPaths: ['DC0/vm/production'] },
    { name: 'test-web', moref: 'vm-40', folderPaths: ['DC0/vm/production-old'] },
    { name: 'lonely', moref: 'vm-42' },
  ];
  const table: { name: string; targets: TargetSpec; vms: string[]; missing?: string[]; disks?: Record<string, number[]> }[] = [
    { name: 'names, in the order given', targets: { vms: ['db-1', 'web01'] }, vms: ['db-1', 'web01'] },
    { name: 'globs, each in inventory order', targets: { vms: ['web*', 'db-?'] }, vms: ['web01', 'web02', 'db-1', 'db-2'] },
    { name: 'morefs', targets: { vms: ['vm-42', 'vm-20'] }, vms: ['lonely', 'db-1'] },
    { name: 'a VM matched twice is selected once, where first matched', targets: { vms: ['web02', 'web*', 'vm-11'] }, vms: ['web02', 'web01'] },
    {
      name: 'folders hold the VMs under them, whole path components only', targets: { folders: ['DC0/vm/production/'] },
      vms: ['web01', 'web02', 'db-1', 'centos-template'],
    },
    { name: 'vms before folders', targets: { folders: ['DC0/vm/staging'], vms: ['lonely'] }, vms: ['lonely', 'db-2'] },
    {
      name: 'exclusions apply last, to names from any target', targets: { vms: ['test-*', 'db-1'], folders: ['DC0/vm/production'], exclude: ['*-template', 'test-*'] },
      vms: ['db-1', 'web01', 'web02'],
    },
    {
      name: 'names without glob characters that match nothing are missing; globs are not', targets: { vms: ['web01', 'web99', 'nope-*', 'vm-999'] },
      vms: ['web01'], missing: ['web99', 'vm-999'],
    },
    { name: 'an excluded name is not missing', targets: { vms: ['db-1'], exclude: ['db-*'] }, vms: [] },
    {
      name: 'excludeDisks by name or moref, merged and sorted', targets: { vms: ['web*'], excludeDisks: { web01: [2002, 2001], 'vm-10': [2001, 2000], nothere: [1] } },
      vms: ['web01', 'web02'], disks: { web01: [2000, 2001, 2002], web02: [] },
    },
  ];
  for (const t of table) {
    it(t.name, () => {
      const s = selectVms(t.targets, inventory);
      assert.deepEqual(s.vms.map((v) => v.name), t.vms);
      assert.deepEqual(s.missing, t.missing ?? []);
      for (const v of s.vms) {
        assert.equal(v.moref, inventory.find((i) => i.name === v.name)?.moref);
        assert.deepEqual(v.excludeDisks, t.disks?.[v.name] ?? []);
      }
    });
  }

  it('takes the parsed targets of a recipe', () => {
    const r = parseRecipe(full, 'full.yaml');
    assert.equal(r.kind, 'backup');
    if (r.kind !== 'backup') return;
    const s = selectVms(r.targets, inventory);
    assert.deepEqual(s.vms, [
      { name: 'web01', moref: 'vm-10', excludeDisks: [2001] },
      { name: 'db-1', moref: 'vm-20', excludeDisks: [] },
      { name: 'db-2', moref: 'vm-21', excludeDisks: [] },
      { name: 'lonely', moref: 'vm-42', excludeDisks: [] },
      { name: 'web02', moref: 'vm-11', excludeDisks: [] },
    ]);
    assert.deepEqual(s.missing, []);
  });
});

describe('recipe JSON Schema', () => {
  const file = new URL('../../schema/recipe.schema.json', import.meta.url);

  /** Keys a person must write: those whose schema refuses undefined. */
  const required = (shape: Record<string, z.ZodType>) => Object.keys(shape).filter((k) => !shape[k]?.safeParse(undefined).success);

  it('schema/recipe.schema.json is what the zod schemas generate (VMBKP_UPDATE_SCHEMA=1 rewrites it)', async () => {
    const generated = recipeJsonSchema();
    if (process.env['VMBKP_UPDATE_SCHEMA'] === '1') await writeFile(file, `${JSON.stringify(generated, null, 2)}\n`);
    const onDisk: unknown = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(onDisk, generated);
  });

  it('its top-level keys are the zod schema\'s, for both kinds', async () => {
    const onDisk = JSON.parse(await readFile(file, 'utf8')) as {
      $schema: string; oneOf: { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean }[];
    };
    assert.equal(onDisk.$schema, 'https://json-schema.org/draft/2020-12/schema');
    const kinds = [backupRecipeSchema, restoreRecipeSchema];
    assert.equal(onDisk.oneOf.length, kinds.length);
    kinds.forEach((schema, i) => {
      const branch = onDisk.oneOf[i];
      assert.ok(branch);
      assert.deepEqual(Object.keys(branch.properties).sort(), Object.keys(schema.shape).sort());
      assert.deepEqual([...branch.required].sort(), required(schema.shape).sort());
      assert.equal(branch.additionalProperties, false);
    });
  });
});

describe('README recipe example', () => {
  it('is a valid backup recipe with the values it describes', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const m = /<!-- recipe-example[^>]*-->\s*```yaml\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has the recipe example block');
    const r = parseRecipe(m[1]!, 'README.md') as BackupRecipe;
    assert.equal(r.kind, 'backup');
    assert.deepEqual(r.concurrency, { vms: 3, disksPerVm: 2, snapshots: 3 });
    assert.equal(r.bandwidth, 200 * 1024 * 1024);
    assert.deepEqual(r.policy.retention, { last: 7, daily: 14, monthly: 6 });
    assert.deepEqual(r.targets.excludeDisks, { db01: [2002] });
    assert.deepEqual(r.repository, { path: '/backup/repo', passwordFile: '/etc/vmbkp/repo.pass' });
  });

  it('the restore recipe example is valid too', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const m = /<!-- restore-recipe-example[^>]*-->\s*```yaml\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has the restore recipe example block');
    const r = parseRecipe(m[1]!, 'README.md');
    assert.equal(r.kind, 'restore');
    if (r.kind === 'restore') assert.deepEqual(r.restores.map((x) => [x.name, x.generation, x.powerOn]), [['web01-drill', 'latest', true], ['db01-copy', 12, false]]);
  });
});
