/**
 * The repository password through the real CLI: where it comes from (--repo-password-file,
 * VMBKP_REPO_PASSWORD_FILE, VMBKP_REPO_PASSWORD_COMMAND, a recipe's repository mapping),
 * what a wrong or missing one does (exit 8, exit 2, the repository unchanged), and the
 * plaintext repository chosen with --encryption none. No password appears in any output.
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_PASSWORD_FILE, type RunResult, makeImage, oneLine, tempDir, treeDigest, vmbkp } from './helpers.js';

const FIXTURE_PASSWORD = readFileSync(REPO_PASSWORD_FILE, 'utf8').split('\n')[0]!;
const WRONG_PASSWORD = 'not the repository password';
const VCENTER_PASSWORD = 'vcenter-secret-7f3a';

/** A TCP port nothing listens on: taken from the kernel, then let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('repository passwords', { concurrency: true }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let disk: string;
  let template: string;
  let wrong: string;
  let copies = 0;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    ({ dir, cleanup } = await tempDir('vmbkp-repo-password-'));
    disk = file('disk.img');
    await makeImage(disk, '2M', 43);
    wrong = file('wrong.password');
    await fs.writeFile(wrong, `${WRONG_PASSWORD}\n`);
    template = file('template');
    assert.equal((await cli(['init', '--repo', template])).code, 0);
    const r = await cli(['backup', '--repo', template, '--set', 'vm', `sda=file:${disk}`]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => cleanup());

  /** Runs the CLI (the fixture's password in VMBKP_REPO_PASSWORD_FILE unless `env` says otherwise); no password may show. */
  async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    const r = await vmbkp(args, { env });
    for (const s of [FIXTURE_PASSWORD, WRONG_PASSWORD, VCENTER_PASSWORD]) {
      assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `vmbkp ${args.join(' ')} printed a password:\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  async function repoCopy(): Promise<string> {
    const repo = file(`repo-${++copies}`);
    await fs.cp(template, repo, { recursive: true });
    return repo;
  }

  /** A refused command: exit code, one line on stderr matching `re`, nothing on stdout, the repository unchanged. */
  async function refused(repo: string, args: string[], code: number, re: RegExp, env: NodeJS.ProcessEnv = {}): Promise<void> {
    const before = await treeDigest(repo);
    const r = await cli(args, env);
    assert.equal(r.code, code, `vmbkp ${args.join(' ')}: expected exit ${code}, got ${r.code}: ${r.stderr}`);
    assert.match(oneLine(r.stderr), re);
    assert.equal(r.stdout, '');
    assert.deepEqual(await treeDigest(repo), before, `vmbkp ${args.join(' ')} changed the repository`);
  }

  it('a wrong password: exit 8 in one line, the repository unchanged (backup, prune, gc, key remove, restore, key export)', async () => {
    const repo = await repoCopy();
    const [keyId] = await fs.readdir(path.join(repo, 'keys'));
    const target = file('restored.img');
    const exported = file('wrong-password.key');
    const commands = [
      ['backup', '--set', 'vm', `sda=file:${disk}`], ['prune', '--set', 'vm', '--keep-last', '1'], ['gc'], ['key', 'remove', keyId!.slice(0, 8)],
      ['restore', '--set', 'vm', '--generation', 'latest', '--disk', 'sda', '--to', `file:${target}`], ['key', 'export', '--to', exported],
    ];
    for (const args of commands) {
      await refused(repo, [...args, '--repo', repo], 8, /^vmbkp: error: opening repository .* failed: the password opens none of its 1 key$/, { VMBKP_REPO_PASSWORD_FILE: wrong });
    }
    // --repo-password-file is taken before the environment.
    await refused(repo, ['gc', '--repo', repo, '--repo-password-file', wrong], 8, /the password opens none of its 1 key$/);
    assert.ok(!existsSync(target) && !existsSync(exported), 'nothing was written outside the repository either');
  });

  it('VMBKP_REPO_PASSWORD_COMMAND gives the password; a failing or silent command is a one-line exit 2, nothing changed', async () => {
    const repo = await repoCopy();
    const command = (c: string) => ({ VMBKP_REPO_PASSWORD_FILE: '', VMBKP_REPO_PASSWORD_COMMAND: c });
    const r = await cli(['list', '--repo', repo, '--json'], command(`cat '${REPO_PASSWORD_FILE}'`));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { sets: { name: string }[] }).sets.map((s) => s.name), ['vm']);
    await refused(repo, ['backup', '--repo', repo, '--set', 'vm', `sda=file:${disk}`], 2,
      /^vmbkp: error: the repository password command \(VMBKP_REPO_PASSWORD_COMMAND\) failed: exit code 3$/, command('exit 3'));
    await refused(repo, ['gc', '--repo', repo], 2, /the repository password command \(VMBKP_REPO_PASSWORD_COMMAND\) gave an empty repository password$/, command('true'));
    await refused(repo, ['gc', '--repo', repo], 8, /the password opens none of its 1 key$/, command(`cat '${wrong}'`));
    // A password file, from the option or the environment, is taken before the command.
    assert.equal((await cli(['list', '--repo', repo, '--repo-password-file', REPO_PASSWORD_FILE], command('exit 3'))).code, 0);
    assert.equal((await cli(['list', '--repo', repo], { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE, VMBKP_REPO_PASSWORD_COMMAND: 'exit 3' })).code, 0);
  });

  it('no password and no terminal: init, and any command on an encrypted repository, is exit 2 naming the options; nothing is made or changed', async () => {
    const none = { VMBKP_REPO_PASSWORD_FILE: '', VMBKP_REPO_PASSWORD_COMMAND: '' };
    const fresh = file('never-made');
    const r = await cli(['init', '--repo', fresh], none);
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /^vmbkp: error: init needs a password: give --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND, or run it on a terminal; or choose --encryption none$/);
    assert.equal(r.stdout, '');
    assert.ok(!existsSync(fresh), 'init made nothing');
    const repo = await repoCopy();
    for (const args of [['list'], ['backup', '--set', 'vm', `sda=file:${disk}`]]) {
      await refused(repo, [...args, '--repo', repo], 2, /is encrypted: give its password with --repo-password-file FILE, VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND$/, none);
    }
  });

  it('--encryption none makes a plaintext repository (config version 1, no keys/) that needs no password; the default is encrypted', async () => {
    const plain = file('plain');
    const none = { VMBKP_REPO_PASSWORD_FILE: '' };
    const init = await cli(['init', '--repo', plain, '--encryption', 'none', '--json'], none);
    assert.equal(init.code, 0, init.stderr);
    assert.deepEqual((({ version, encryption }) => ({ version, encryption }))(JSON.parse(init.stdout) as { version: number; encryption: string }), { version: 1, encryption: 'none' });
    const config = JSON.parse(await fs.readFile(path.join(plain, 'config'), 'utf8')) as { version: number; encryption?: unknown };
    assert.equal(config.version, 1);
    assert.equal(config.encryption, undefined);
    assert.ok(!existsSync(path.join(plain, 'keys')), 'a plaintext repository has no keys/');
    const backup = await cli(['backup', '--repo', plain, '--set', 'vm', `sda=file:${disk}`], none);
    assert.equal(backup.code, 0, backup.stderr);
    assert.ok(existsSync(path.join(plain, 'generations', 'vm')), 'set names are not hidden');
    assert.doesNotMatch(backup.stderr, /warning/);
    // A password given on the command line for a plaintext repository: the user expected encryption.
    const given = await cli(['list', '--repo', plain, '--repo-password-file', REPO_PASSWORD_FILE], none);
    assert.equal(given.code, 0, given.stderr);
    assert.match(given.stderr, /^vmbkp: warning: repository .*plain is not encrypted, yet a repository password was given: its backups are stored in plaintext$/m);

    // The template was made by a plain `init`: encrypted, one key.
    const encrypted = JSON.parse(await fs.readFile(path.join(template, 'config'), 'utf8')) as { version: number; encryption?: { cipher: string } };
    assert.equal(encrypted.version, 2);
    assert.equal(encrypted.encryption?.cipher, 'aes-256-gcm');
    assert.equal((await fs.readdir(path.join(template, 'keys'))).length, 1);
    await refused(plain, ['init', '--repo', file('other'), '--encryption', 'rot13'], 2, /--encryption "rot13" is not one of: aes-256-gcm, none$/);
  });

  describe('recipes', () => {
    let port: number;
    before(async () => { port = await closedPort(); });

    /**
     * Runs a backup recipe whose vCenter refuses connections: the repository is opened
     * before the login, so reaching the vCenter shows the repository opened.
     */
    async function runRecipe(name: string, repository: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
      const recipe = file(`${name}.yaml`);
      await fs.writeFile(recipe, [
        'version: 1', 'kind: backup',
        `connection: { vcenter: "https://127.0.0.1:${port}/sdk", user: backup, passwordEnv: VC_PASSWORD, insecure: true }`,
        `repository: ${repository}`, 'targets: { vms: [web01] }', '',
      ].join('\n'));
      return cli(['run', recipe], { VC_PASSWORD: VCENTER_PASSWORD, VMBKP_REPO_PASSWORD_FILE: '', ...env });
    }

    const reachedVcenter = (r: RunResult) => {
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), new RegExp(`^vmbkp: error: connecting to 127\\.0\\.0\\.1:${port} failed: ECONNREFUSED`));
    };

    it('repository.passwordFile, passwordEnv and passwordCommand open an encrypted repository without any other source', async () => {
      const repo = await repoCopy();
      reachedVcenter(await runRecipe('pw-file', `{ path: "${repo}", passwordFile: "${REPO_PASSWORD_FILE}" }`));
      reachedVcenter(await runRecipe('pw-env', `{ path: "${repo}", passwordEnv: REPO_PW }`, { REPO_PW: FIXTURE_PASSWORD }));
      reachedVcenter(await runRecipe('pw-command', `{ path: "${repo}", passwordCommand: "cat '${REPO_PASSWORD_FILE}'" }`));
    });

    it('the recipe\'s source is taken before the environment; without one, the environment\'s; without either, exit 2 naming both', async () => {
      const repo = await repoCopy();
      const before = await treeDigest(repo);
      const wrongFromRecipe = await runRecipe('wrong', `{ path: "${repo}", passwordFile: "${wrong}" }`, { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE });
      assert.equal(wrongFromRecipe.code, 8, wrongFromRecipe.stderr);
      assert.match(oneLine(wrongFromRecipe.stderr), /the password opens none of its 1 key$/);
      reachedVcenter(await runRecipe('from-env', repo, { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE }));
      const missing = await runRecipe('none', repo);
      assert.equal(missing.code, 2);
      assert.match(oneLine(missing.stderr), /is encrypted: give its password in recipe .*none\.yaml \(repository\.passwordFile, passwordEnv or passwordCommand\), or with --repo-password-file FILE/);
      const unset = await runRecipe('unset', `{ path: "${repo}", passwordEnv: REPO_PW_UNSET }`);
      assert.equal(unset.code, 2);
      assert.match(oneLine(unset.stderr), /environment variable REPO_PW_UNSET \(repository\.passwordEnv of recipe .*unset\.yaml\) is not set$/);
      assert.deepEqual(await treeDigest(repo), before, 'the refused runs changed the repository');
    });
  });
});
