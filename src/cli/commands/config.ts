/**
 * `vmbkp config show`: the settings in effect — the config file and how it was found, its
 * profiles, the environment variables that override them, and the vCenter and repository
 * a command given the same options would use. Password files are shown by path, commands
 * by their program; a password, or what a command prints, never.
 */
import type { Command } from 'commander';
import type { Setting, VcenterSettings, RepositorySettings } from '../../app/settings.js';
import { describeCause } from '../../errors.js';
import { type GlobalOptions, Output, loadedConfig } from '../context.js';
import { table } from '../format.js';
import { type VcenterOptions, addVcenterOptions } from '../vcenter.js';

const shown = <T>(s: Setting<T> | undefined, f: (v: T) => string | null = (v) => String(v)) => (s ? { value: f(s.value), from: s.from } : null);

/** The app's describers, loaded by the action (the settings module is not loaded at start). */
type Describers = Pick<typeof import('../../app/settings.js'), 'describePassword' | 'describeTrust'>;

function vcenterView(s: VcenterSettings, { describePassword, describeTrust }: Describers) {
  return {
    profile: s.profile ?? null, url: shown(s.url), user: shown(s.user),
    password: s.password ? { value: describePassword(s.password.value), from: s.password.from } : null,
    trust: shown(s.trust, describeTrust),
  };
}

function repositoryView(s: RepositorySettings, { describePassword }: Describers) {
  return { profile: s.profile ?? null, location: shown(s.location), password: s.password ? { value: describePassword(s.password), from: s.password.what } : null };
}

/** Either what would be used, or why nothing can be (an unknown profile name): config show never fails on it. */
function attempt<T>(f: () => T | undefined): T | { error: string } | null {
  try {
    return f() ?? null;
  } catch (err) {
    return { error: describeCause(err) };
  }
}

function line(label: string, v: { value: string | null; from: string } | null): string {
  return `  ${label}: ${v ? `${v.value} (from ${v.from})` : '(not set)'}`;
}

export function register(program: Command): void {
  const config = program.command('config').description('the config file of named vCenters and repositories (see README: Config file)');
  const show = config.command('show')
    .description('print the settings in effect: the config file, its profiles, the environment overrides, and the vCenter and repository a command would use (secrets masked)');
  addVcenterOptions(show);
  show.action(async (opts: GlobalOptions & VcenterOptions) => {
    const settings = await import('../../app/settings.js');
    const { describeRepositoryProfile, describeVcenterProfile, environmentInEffect, repositorySettings, vcenterSettings } = settings;
    const out = new Output(!!opts.json);
    const c = await loadedConfig();
    const vcenter = attempt(() => { const s = vcenterSettings(c, opts); return s && vcenterView(s, settings); });
    const repository = attempt(() => { const s = repositorySettings(c, { repo: opts.repo, passwordFile: opts.repoPasswordFile }); return s && repositoryView(s, settings); });
    const view = {
      file: c.file ?? null,
      foundBy: c.file === undefined ? null : c.source === 'flag' ? '--config' : c.source === 'env' ? 'VMBKP_CONFIG' : 'default location',
      searched: c.searched,
      vcenters: Object.fromEntries(Object.entries(c.data.vcenters).map(([n, p]) => [n, describeVcenterProfile(p)])),
      repositories: Object.fromEntries(Object.entries(c.data.repositories).map(([n, p]) => [n, describeRepositoryProfile(p)])),
      defaults: { vcenter: c.data.defaults.vcenter ?? null, repository: c.data.defaults.repository ?? null },
      environment: environmentInEffect(),
      effective: { vcenter, repository },
    };
    const human: string[] = [
      view.file ? `config file: ${view.file} (found by ${view.foundBy})` : `config file: none (looked for ${c.searched.join(', ')})`,
    ];
    const vcRows = Object.entries(view.vcenters).map(([n, p]) => [n, p.url, p.user, p.password ?? '(none)', p.trust]);
    if (vcRows.length) human.push('', 'vCenters:', table(['name', 'url', 'user', 'password', 'trust'], vcRows));
    const repoRows = Object.entries(view.repositories).map(([n, p]) => [n, p.path, p.password ?? '(none)']);
    if (repoRows.length) human.push('', 'repositories:', table(['name', 'path', 'password'], repoRows));
    human.push('', `defaults: vcenter ${view.defaults.vcenter ?? '(none)'}, repository ${view.defaults.repository ?? '(none)'}`);
    const env = Object.entries(view.environment);
    human.push('', env.length ? 'environment:' : 'environment: no VMBKP_ variable set', ...env.map(([k, v]) => `  ${k}=${v}`));
    human.push('', 'a command given these options would use:');
    if (vcenter === null) human.push('vCenter: none');
    else if ('error' in vcenter) human.push(`vCenter: ${vcenter.error}`);
    else human.push(`vCenter${vcenter.profile ? ` ${vcenter.profile}` : ''}:`, line('url', vcenter.url), line('user', vcenter.user), line('password', vcenter.password), line('trust', vcenter.trust));
    if (repository === null) human.push('repository: none');
    else if ('error' in repository) human.push(`repository: ${repository.error}`);
    else human.push(`repository${repository.profile ? ` ${repository.profile}` : ''}:`, line('location', repository.location), line('password', repository.password));
    out.result(view, human.join('\n'));
  });
}
