/**
 * The config file of named vCenters and repositories, against the lab: commands that name
 * no connection at all take the defaults; environment variables beat the profile and flags
 * beat both; a malformed file names its line and field; secrets never reach config show,
 * an error or --json.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { makeCertificates } from './certificates.js';
import { REPO_PASSWORD_FILE, type RunResult, sha256File, tempDir, vmbkp } from './helpers.js';
import { Lab } from './lab.js';

const MiB = 1024 * 1024;
const VM = 'lab-vm-1';

/** The server's certificate as PEM: the lab's is self-signed, so it is its own CA. */
function peerCertificatePem(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.end();
      resolve(`-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`);
    });
    socket.once('error', reject);
  });
}

describe('config file: named vCenters and repositories', () => {
  let lab: Lab;
  let dir: string;
  let cleanup: () => Promise<void>;
  /** The config file every command below is given (with --config). */
  let config: string;
  let repo: string;
  let pw: string;
  let diskKey: number;

  /**
   * vmbkp with the config file and nothing else: no VMBKP_ variable from this process (the
   * helpers set a repository password for every test), a HOME without a config file.
   */
  function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return vmbkp(['--config', config, ...args], {
      env: { HOME: dir, XDG_CONFIG_HOME: undefined, VMBKP_CONFIG: undefined, VMBKP_REPO: undefined, VMBKP_REPO_PASSWORD_FILE: undefined, ...env },
    });
  }

  function ok(r: RunResult, what: string): void {
    assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  }

  async function restoreSha(generation: string): Promise<string> {
    const out = path.join(dir, `restore-${generation}-${randomBytes(4).toString('hex')}.img`);
    const r = await cli(['restore', '--set', VM, '--generation', generation, '--disk', String(diskKey), '--to', `file:${out}`]);
    ok(r, `restore generation ${generation}`);
    return sha256File(out);
  }

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    lab = await Lab.start(['--vms', '1', '--disks', '1', '--disk-size', String(16 * MiB)]);
    pw = await lab.passwordFile(dir);
    repo = path.join(dir, 'repo');
    config = path.join(dir, 'config.yaml');
    await fs.writeFile(config, [
      '# one vCenter (the lab) and one repository, both the defaults',
      'vcenters:',
      '  lab:',
      `    url: ${lab.info.url}`,
      `    user: ${lab.info.user}`,
      `    passwordFile: ${pw}`,
      `    thumbprint: ${lab.info.thumbprintSha256}`,
      'repositories:',
      '  main:',
      `    path: ${repo}`,
      `    passwordFile: ${REPO_PASSWORD_FILE}`,
      'defaults:',
      '  vcenter: lab',
      '  repository: main',
      '',
    ].join('\n'));
    diskKey = (await lab.vm(VM)).disks[0]!.key;
  });
  after(async () => {
    await lab?.stop();
    await cleanup?.();
  });

  describe('without any connection flag', () => {
    /** What the lab disk held at each backup, oldest first: two generations, so that selectors (latest~1) have a choice. */
    const frozen: string[] = [];

    it('init, backup --vcenter lab --vm, a guest write, backup --vm (the default vCenter): the repository and password come from the profile', async () => {
      ok(await cli(['init']), 'init');
      assert.ok((await fs.stat(path.join(repo, 'config'))).isFile(), 'init created the repository of defaults.repository');
      frozen.push(await lab.sha256(VM, diskKey));
      const first = await cli(['backup', '--vcenter', 'lab', '--vm', VM, '--json']);
      ok(first, 'backup --vcenter lab');
      assert.equal((JSON.parse(first.stdout) as { vms: { ok: boolean }[] }).vms[0]!.ok, true);
      await lab.write(VM, diskKey, 3 * MiB, randomBytes(MiB));
      frozen.push(await lab.sha256(VM, diskKey));
      assert.notEqual(frozen[1], frozen[0]);
      ok(await cli(['backup', '--vm', VM]), 'backup --vm (vCenter from defaults.vcenter)');
    });

    it('restore of a disk to a file: each generation equals what the lab disk held', async () => {
      assert.equal(await restoreSha('1'), frozen[0]);
      assert.equal(await restoreSha('latest'), frozen[1]);
    });

    it('restore --disk "Hard disk 1" --generation latest~1, and status: by the names people see, still without a connection flag', async () => {
      const out = path.join(dir, 'by-label.img');
      ok(await cli(['restore', '--set', VM, '--generation', 'latest~1', '--disk', 'Hard disk 1', '--to', `file:${out}`]), 'restore by label and selector');
      assert.equal(await sha256File(out), frozen[0]);
      const st = await cli(['status', '--json']);
      ok(st, 'status');
      const status = JSON.parse(st.stdout) as { sets: { name: string; generations: number; newest: { generation: number } }[] };
      assert.deepEqual(status.sets.map((x) => [x.name, x.generations, x.newest.generation]), [[VM, 2, 2]]);
    });

    it('list shows both generations of the set', async () => {
      const r = await cli(['list', '--json']);
      ok(r, 'list');
      const list = JSON.parse(r.stdout) as { repository: string; sets: { name: string; generations: { generation: number }[] }[] };
      assert.equal(list.repository, repo);
      assert.deepEqual(list.sets.map((s) => [s.name, s.generations.map((g) => g.generation)]), [[VM, [1, 2]]]);
    });

    it('--repo and --vcenter by name are the same as the defaults; a path still works', async () => {
      ok(await cli(['list', '--repo', 'main']), 'list --repo main');
      const byPath = await cli(['list', '--repo', repo, '--json'], { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE });
      ok(byPath, 'list --repo PATH');
      assert.equal((JSON.parse(byPath.stdout) as { sets: { generations: unknown[] }[] }).sets[0]!.generations.length, 2);
    });
  });

  describe('copy between two named repositories', () => {
    it('init --repo offsite, copy --from-repo main --repo offsite: both by name, each with its profile\'s password', async () => {
      const two = path.join(dir, 'two-repositories.yaml');
      const offsite = path.join(dir, 'offsite');
      const offsitePassword = path.join(dir, 'offsite-password');
      await fs.writeFile(offsitePassword, 'another password\n');
      await fs.writeFile(two, [
        (await fs.readFile(config, 'utf8')).replace('defaults:', [
          '  offsite:', `    path: ${offsite}`, `    passwordCommand: [cat, ${offsitePassword}]`, 'defaults:',
        ].join('\n')),
      ].join(''));
      const run = (args: string[]) => vmbkp(['--config', two, ...args], { env: { VMBKP_REPO_PASSWORD_FILE: undefined, VMBKP_CONFIG: undefined } });
      ok(await run(['init', '--repo', 'offsite']), 'init --repo offsite');
      const copied = await run(['copy', '--from-repo', 'main', '--repo', 'offsite', '--json']);
      ok(copied, 'copy');
      const list = await run(['list', '--repo', 'offsite', '--json']);
      ok(list, 'list --repo offsite');
      const l = JSON.parse(list.stdout) as { repository: string; sets: { name: string; generations: unknown[] }[] };
      assert.equal(l.repository, offsite);
      assert.deepEqual(l.sets.map((x) => [x.name, x.generations.length]), [[VM, 2]]);
      // The offsite profile's password is not the main one's: opening it with that one fails.
      const wrong = await vmbkp(['--config', two, 'list', '--repo', 'offsite'], { env: { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE } });
      assert.equal(wrong.code, 8, wrong.stderr);
    });
  });

  describe('recipes name the same profiles', () => {
    it('connection: lab and repository: main run a backup recipe', async () => {
      const recipe = path.join(dir, 'recipe.yaml');
      await fs.writeFile(recipe, ['version: 1', 'kind: backup', 'connection: lab', 'repository: main', 'targets:', `  vms: [${VM}]`, ''].join('\n'));
      const r = await cli(['run', recipe, '--json']);
      ok(r, 'run');
      const report = JSON.parse(r.stdout) as { repository: string; vms: { vm: string; ok: boolean }[] };
      assert.equal(report.repository, repo);
      assert.deepEqual(report.vms.map((v) => [v.vm, v.ok]), [[VM, true]]);
    });

    it('a name the config file lacks: the error names it and the profiles there are', async () => {
      const recipe = path.join(dir, 'recipe-unknown.yaml');
      await fs.writeFile(recipe, ['version: 1', 'kind: backup', 'connection: prod', 'repository: main', 'targets:', `  vms: [${VM}]`, ''].join('\n'));
      const r = await cli(['run', recipe]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^vmbkp: error: connection of recipe \S+ "prod": config \S+ has no vCenter named "prod" \(it has lab\)/);
    });
  });

  describe('precedence: flags beat environment variables beat the profile', () => {
    it('VMBKP_REPO overrides defaults.repository (here: a directory without a repository)', async () => {
      const empty = path.join(dir, 'empty');
      await fs.mkdir(empty, { recursive: true });
      const r = await cli(['list'], { VMBKP_REPO: empty });
      assert.equal(r.code, 6, r.stderr);
      assert.ok(r.stderr.includes(empty), r.stderr);
      // --repo beats VMBKP_REPO.
      ok(await cli(['list', '--repo', 'main'], { VMBKP_REPO: empty }), 'list --repo main with VMBKP_REPO set');
    });

    it('VMBKP_REPO_PASSWORD_FILE overrides the profile\'s password file', async () => {
      const wrong = path.join(dir, 'wrong-repo-password');
      await fs.writeFile(wrong, 'not the password\n');
      const r = await cli(['list'], { VMBKP_REPO_PASSWORD_FILE: wrong });
      assert.equal(r.code, 8, r.stderr);
    });

    it('VMBKP_VCENTER_THUMBPRINT overrides the profile\'s thumbprint; --thumbprint beats it', async () => {
      const other = 'AB:'.repeat(31) + 'AB';
      const r = await cli(['backup', '--vm', VM], { VMBKP_VCENTER_THUMBPRINT: other });
      assert.equal(r.code, 7, r.stderr);
      assert.match(r.stderr, /not the pinned AB:AB/);
      ok(await cli(['backup', '--vm', VM, '--thumbprint', lab.info.thumbprintSha256, '--json'], { VMBKP_VCENTER_THUMBPRINT: other }), 'flag beats env');
    });

    it('VMBKP_VCENTER_USER and VMBKP_VCENTER_PASSWORD_FILE override the profile', async () => {
      const user = await cli(['backup', '--vm', VM], { VMBKP_VCENTER_USER: 'somebody-else' });
      assert.equal(user.code, 7, user.stderr);
      const missing = path.join(dir, 'no-such-password-file');
      const file = await cli(['backup', '--vm', VM], { VMBKP_VCENTER_PASSWORD_FILE: missing });
      assert.equal(file.code, 2, file.stderr);
      assert.ok(file.stderr.includes(missing), file.stderr);
    });

    it('VMBKP_VCENTER (a URL) replaces the whole profile: its user and password are not used for another server', async () => {
      const r = await cli(['backup', '--vm', VM], { VMBKP_VCENTER: lab.info.url });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /no user for vCenter/);
      const full = await cli(['backup', '--vm', VM, '--json'], {
        VMBKP_VCENTER: lab.info.url, VMBKP_VCENTER_USER: lab.info.user, VMBKP_VCENTER_PASSWORD_FILE: pw, VMBKP_VCENTER_INSECURE: '1',
      });
      ok(full, 'a vCenter from environment variables alone');
    });

    it('VMBKP_VCENTER_CA_FILE: the server\'s certificate verified against a CA file', async () => {
      const ca = path.join(dir, 'lab-ca.pem');
      await fs.writeFile(ca, await peerCertificatePem(lab.info.url));
      // The profile pins a thumbprint; the CA file replaces that trust (one layer decides it whole).
      ok(await cli(['backup', '--vm', VM, '--json'], { VMBKP_VCENTER_CA_FILE: ca }), 'backup with a CA file');
      // A CA that did not sign the lab's certificate: refused before the login.
      const other = path.join(await makeCertificates(dir, 'other'), 'ca-cert.pem');
      const r = await cli(['backup', '--vm', VM], { VMBKP_VCENTER_CA_FILE: other });
      assert.equal(r.code, 7, r.stderr);
    });
  });

  describe('config show', () => {
    it('prints the file, each profile, the defaults and the environment in effect, with where each setting comes from', async () => {
      const r = await cli(['config', 'show', '--json'], { VMBKP_VCENTER_USER: 'override-user', VMBKP_KDF_MEMORY: undefined });
      ok(r, 'config show');
      const v = JSON.parse(r.stdout) as {
        file: string; foundBy: string; vcenters: Record<string, { url: string; user: string; password: string; trust: string }>;
        repositories: Record<string, { path: string; password: string }>; defaults: { vcenter: string; repository: string };
        environment: Record<string, string>;
        effective: { vcenter: { profile: string; user: { value: string; from: string }; url: { value: string } }; repository: { location: { value: string } } };
      };
      assert.equal(v.file, config);
      assert.equal(v.foundBy, '--config');
      assert.deepEqual(v.vcenters['lab'], { url: lab.info.url, user: lab.info.user, password: `file ${pw}`, trust: `thumbprint ${lab.info.thumbprintSha256}` });
      assert.deepEqual(v.repositories['main'], { path: repo, password: `file ${REPO_PASSWORD_FILE}` });
      assert.deepEqual(v.defaults, { vcenter: 'lab', repository: 'main' });
      assert.deepEqual(v.environment, { VMBKP_VCENTER_USER: 'override-user' });
      assert.equal(v.effective.vcenter.profile, 'lab');
      assert.deepEqual(v.effective.vcenter.user, { value: 'override-user', from: 'VMBKP_VCENTER_USER' });
      assert.equal(v.effective.repository.location.value, repo);
    });

    it('a default file: ~/.config/vmbkp/config.yaml is found without --config', async () => {
      const home = path.join(dir, 'home');
      await fs.mkdir(path.join(home, '.config/vmbkp'), { recursive: true });
      await fs.copyFile(config, path.join(home, '.config/vmbkp/config.yaml'));
      const r = await vmbkp(['config', 'show', '--json'], { env: { HOME: home, XDG_CONFIG_HOME: undefined, VMBKP_CONFIG: undefined } });
      ok(r, 'config show');
      const v = JSON.parse(r.stdout) as { file: string; foundBy: string };
      assert.deepEqual([v.file, v.foundBy], [path.join(home, '.config/vmbkp/config.yaml'), 'default location']);
      // VMBKP_CONFIG beats it; a missing explicit file is an error, a missing default one is not.
      const viaEnv = await vmbkp(['config', 'show', '--json'], { env: { HOME: home, VMBKP_CONFIG: config } });
      assert.equal((JSON.parse(viaEnv.stdout) as { foundBy: string }).foundBy, 'VMBKP_CONFIG');
      const missing = await vmbkp(['list'], { env: { HOME: home, VMBKP_CONFIG: path.join(dir, 'nope.yaml') } });
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /^vmbkp: error: config \S*nope\.yaml \(VMBKP_CONFIG\) does not exist\n$/);
      const none = await vmbkp(['config', 'show', '--json'], { env: { HOME: path.join(dir, 'empty-home'), XDG_CONFIG_HOME: undefined, VMBKP_CONFIG: undefined } });
      ok(none, 'config show without any file');
      assert.equal((JSON.parse(none.stdout) as { file: unknown }).file, null);
    });
  });

  describe('secrets', () => {
    const SECRETS = { vcenterCommand: 'vc-secret-7f3a', repoCommand: 'repo-secret-91bd', envCommand: 'env-secret-c0de' };
    let secretConfig: string;

    before(async () => {
      secretConfig = path.join(dir, 'secret-config.yaml');
      await fs.writeFile(secretConfig, [
        'vcenters:',
        '  lab:',
        `    url: ${lab.info.url}`,
        `    user: ${lab.info.user}`,
        `    passwordCommand: [echo, ${SECRETS.vcenterCommand}]`,
        `    thumbprint: ${lab.info.thumbprintSha256}`,
        '  real:',
        `    url: ${lab.info.url}`,
        `    user: ${lab.info.user}`,
        `    passwordCommand: [cat, ${pw}]`,
        `    thumbprint: ${lab.info.thumbprintSha256}`,
        'repositories:',
        '  main:',
        `    path: ${repo}`,
        `    passwordCommand: echo ${SECRETS.repoCommand}`,
        'defaults: { vcenter: lab, repository: main }',
        '',
      ].join('\n'));
    });

    function noSecret(r: RunResult, what: string): void {
      for (const s of [...Object.values(SECRETS), lab.info.password]) {
        assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `${what} shows a secret: ${r.stdout}${r.stderr}`);
      }
    }

    it('config show, human and --json, shows commands by their program and password files by path, never a password', async () => {
      const env = { VMBKP_REPO_PASSWORD_COMMAND: `printf ${SECRETS.envCommand}`, VMBKP_VCENTER_PASSWORD_FILE: pw };
      for (const json of [[], ['--json']]) {
        const r = await vmbkp(['--config', secretConfig, 'config', 'show', ...json], { env: { VMBKP_REPO_PASSWORD_FILE: undefined, ...env } });
        ok(r, 'config show');
        noSecret(r, 'config show');
        assert.ok(r.stdout.includes('echo') && r.stdout.includes('printf') && r.stdout.includes(pw), r.stdout);
      }
    });

    it('a password command without a shell logs in; a wrong password from a command is an error that does not show it', async () => {
      const good = await vmbkp(['--config', secretConfig, 'backup', '--vcenter', 'real', '--vm', VM, '--json'], { env: { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE } });
      ok(good, 'backup with the vCenter password from [cat, FILE]');
      noSecret(good, 'backup --json');
      const badVc = await vmbkp(['--config', secretConfig, 'backup', '--vm', VM, '--json'], { env: { VMBKP_REPO_PASSWORD_FILE: REPO_PASSWORD_FILE } });
      assert.equal(badVc.code, 7, badVc.stderr);
      noSecret(badVc, 'a failed login');
      const badRepo = await vmbkp(['--config', secretConfig, 'list', '--json'], { env: { VMBKP_REPO_PASSWORD_FILE: undefined } });
      assert.equal(badRepo.code, 8, badRepo.stderr);
      noSecret(badRepo, 'a wrong repository password');
    });
  });

  describe('a malformed config names its file, line and field', () => {
    const base = (extra: string[]) => ['vcenters:', '  lab:', '    url: https://vc.example.com', '    user: u', '    passwordFile: /etc/vmbkp/vc.pw', ...extra];
    const cases: { name: string; text: string[]; line: number; message: RegExp }[] = [
      { name: 'an unknown key, with a suggestion', text: base(['    passwrdCommand: x']), line: 6, message: /vcenters\.lab: unknown key "passwrdCommand" \(did you mean "passwordCommand"\?\)/ },
      { name: 'a URL that is not https', text: ['vcenters:', '  lab:', '    url: ftp://vc', '    user: u', '    passwordFile: /x'], line: 3, message: /vcenters\.lab\.url: must be an https:\/\/ URL or a host name \(got "ftp:\/\/vc"\)/ },
      { name: 'a missing user', text: ['vcenters:', '  lab:', '    url: https://vc', '    passwordFile: /x'], line: 2, message: /vcenters\.lab\.user is required/ },
      { name: 'two ways to trust the server', text: base(['    thumbprint: ' + 'AB:'.repeat(19) + 'AB', '    insecure: true']), line: 7, message: /vcenters\.lab\.insecure: thumbprint and insecure exclude each other/ },
      { name: 'insecure not a boolean', text: base(['    insecure: "yes"']), line: 6, message: /vcenters\.lab\.insecure: must be true or false \(got "yes"\)/ },
      { name: 'a default naming no profile', text: [...base([]), 'defaults:', '  vcenter: prod'], line: 7, message: /defaults\.vcenter: no vCenter named "prod" \(known: lab\)/ },
      { name: 'a profile name that looks like a path', text: ['repositories:', '  off.site:', '    path: /backup'], line: 2, message: /"off\.site" is not a profile name/ },
      { name: 'a repository without its path', text: ['repositories:', '  main:', '    passwordFile: /x'], line: 2, message: /repositories\.main\.path is required/ },
      { name: 'both password sources', text: ['repositories:', '  main:', '    path: /b', '    passwordFile: /x', '    passwordCommand: [pass, show]'], line: 5, message: /repositories\.main\.passwordCommand: give passwordFile or passwordCommand, not both/ },
      { name: 'YAML: a key twice', text: [...base([]), '    user: v'], line: 6, message: /YAML syntax error: Map keys must be unique/ },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const file = path.join(dir, `bad-${c.name.replace(/\W+/g, '-')}.yaml`);
        await fs.writeFile(file, c.text.join('\n') + '\n');
        const r = await vmbkp(['--config', file, 'list'], { env: { VMBKP_CONFIG: undefined } });
        assert.equal(r.code, 2, r.stderr);
        const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        assert.match(r.stderr, new RegExp(`^vmbkp: error: config ${escaped}: line ${c.line}: `), r.stderr);
        assert.match(r.stderr, c.message);
        assert.equal(r.stderr.split('\n').length, 2, 'one line');
      });
    }

    it('a name on the command line that no profile has: the error lists the profiles', async () => {
      const r = await cli(['list', '--repo', 'offsite']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--repo "offsite": config \S+ has no repository named "offsite" \(it has main\)/);
    });
  });

  describe('retention in a repository profile', () => {
    it('prune --all without --keep-* or --recipe prunes the sets the profile\'s retention names (first matching key), and leaves the others alone', async () => {
      const keeping = path.join(dir, 'keeping.yaml');
      const krepo = path.join(dir, 'keeping-repo');
      await fs.writeFile(keeping, [
        'repositories:',
        '  keep:',
        `    path: ${krepo}`,
        `    passwordFile: ${REPO_PASSWORD_FILE}`,
        '    retention:',
        '      web01: { keepLast: 2 }',
        '      "web*": { keepLast: 1 }',
        'defaults:',
        '  repository: keep',
        '',
      ].join('\n'));
      const run = (args: string[]) => vmbkp(['--config', keeping, ...args], { env: { VMBKP_REPO: undefined, VMBKP_REPO_PASSWORD_FILE: undefined, VMBKP_CONFIG: undefined } });
      ok(await run(['init']), 'init');
      const img = path.join(dir, 'keeping.img');
      for (const set of ['web01', 'web02', 'db01']) {
        for (let i = 0; i < 3; i++) {
          await fs.writeFile(img, randomBytes(64 * 1024));
          ok(await run(['backup', '--set', set, `sda=file:${img}`]), `backup ${set}`);
        }
      }
      const r = await run(['prune', '--all', '--json']);
      ok(r, 'prune --all');
      const out = JSON.parse(r.stdout) as { unmanaged: string[]; policies: { set: string; from: string }[] };
      assert.deepEqual(out.unmanaged, ['db01']);
      assert.deepEqual(out.policies.map((p) => [p.set, p.from]), [
        ['web01', 'config repository keep retention "web01"'], ['web02', 'config repository keep retention "web*"'],
      ]);
      const list = JSON.parse((await run(['list', '--json'])).stdout) as { sets: { name: string; generations: { generation: number }[] }[] };
      assert.deepEqual(list.sets.map((x) => [x.name, x.generations.map((g) => g.generation)]), [['db01', [1, 2, 3]], ['web01', [2, 3]], ['web02', [3]]]);
      // An explicit policy is the user's intent: the profile's retention is not mixed in.
      const explicit = await run(['prune', '--all', '--keep-last', '3', '--dry-run', '--json']);
      ok(explicit, 'prune --all --keep-last');
      assert.deepEqual((JSON.parse(explicit.stdout) as { policies: { from: string }[] }).policies.map((p) => p.from), ['--keep-* options', '--keep-* options', '--keep-* options']);
    });
  });
});
