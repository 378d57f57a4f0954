/**
 * Which vCenter and repository a command works on, and with what credentials: the one
 * place where flags, environment variables and the config file's profiles meet.
 *
 * Precedence, per setting: a flag, else its environment variable, else the profile.
 * The vCenter is --vcenter, else VMBKP_VCENTER, else defaults.vcenter; the repository
 * --repo, else VMBKP_REPO, else defaults.repository. A value that is a bare word (see
 * isProfileName) names a profile, anything else is a URL, host or path and uses no
 * profile. The password and the certificate trust are each decided whole by the first
 * layer that sets them (a --thumbprint replaces a profile's caFile rather than clashing).
 */
import { UsageError } from '../errors.js';
import type { Env, LoadedConfig } from './config-file.js';
import { isProfileName } from '../recipe/profile-name.js';
import type { RepositoryProfile, VcenterProfile } from './config-schema.js';
import { type PasswordVariables, type RepositoryPasswordSource, environmentPasswordSource } from './repository-password.js';
import { type SecretCommand, describeCommand } from './secret-command.js';
import type { VcenterLogin } from './vcenter.js';

/** A value and where it came from ("--user", "VMBKP_VCENTER_USER", "vcenters.lab in FILE"). */
export interface Setting<T> { readonly value: T; readonly from: string }

export type PasswordSetting = { readonly kind: 'file'; readonly file: string } | { readonly kind: 'command'; readonly command: SecretCommand };
export type TrustSetting =
  | { readonly kind: 'system' } | { readonly kind: 'thumbprint'; readonly thumbprint: string }
  | { readonly kind: 'ca'; readonly caFile: string } | { readonly kind: 'insecure' };

/** The vCenter options as the command line has them. */
export interface VcenterFlags {
  readonly vcenter?: string | undefined;
  /** Where `vcenter` was given, for messages (default "--vcenter"; a recipe's "connection of recipe F"). */
  readonly given?: string;
  readonly user?: string | undefined;
  readonly passwordFile?: string | undefined;
  readonly thumbprint?: string | undefined;
  readonly caFile?: string | undefined;
  readonly insecure?: boolean | undefined;
}

export interface VcenterSettings {
  /** The profile used, when the vCenter was given by name. */
  readonly profile?: string;
  readonly url: Setting<string>;
  readonly user?: Setting<string>;
  readonly password?: Setting<PasswordSetting>;
  readonly trust: Setting<TrustSetting>;
}

/** The environment variable of each vCenter option. */
export const VCENTER_ENV = {
  vcenter: 'VMBKP_VCENTER', user: 'VMBKP_VCENTER_USER', passwordFile: 'VMBKP_VCENTER_PASSWORD_FILE', passwordCommand: 'VMBKP_VCENTER_PASSWORD_COMMAND',
  thumbprint: 'VMBKP_VCENTER_THUMBPRINT', caFile: 'VMBKP_VCENTER_CA_FILE', insecure: 'VMBKP_VCENTER_INSECURE',
} as const;

function inFile(config: LoadedConfig, field: string): string {
  return `${field} in ${config.file ?? 'the config'}`;
}

/** A set variable's value; an empty one counts as unset (so `VAR= vmbkp …` switches it off). */
function envValue(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function envFlag(env: Env, name: string): boolean | undefined {
  const v = envValue(env, name);
  if (v === undefined) return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new UsageError(`${name}=${JSON.stringify(v)} is not a yes or no: use 1, true, yes or 0, false, no`);
}

/** The profile a bare word names; a usage error naming the config file (or its absence) when there is none. */
function profile<T>(config: LoadedConfig, kind: 'vcenters' | 'repositories', name: string, given: string): T {
  const profiles = config.data[kind] as Readonly<Record<string, T>>;
  if (Object.hasOwn(profiles, name)) return profiles[name]!;
  const what = kind === 'vcenters' ? 'vCenter' : 'repository';
  const asValue = kind === 'vcenters' ? `the URL https://${name}` : `the path ./${name}`;
  if (config.file === undefined) {
    throw new UsageError(`${given} ${JSON.stringify(name)} names a ${what} profile, but there is no config file (looked for ${config.searched.join(', ')}); `
      + `define ${kind}.${name} there, or give ${asValue} (a bare word always names a profile)`);
  }
  const known = Object.keys(profiles);
  throw new UsageError(`${given} ${JSON.stringify(name)}: config ${config.file} has no ${what} named ${JSON.stringify(name)} `
    + `(${known.length ? `it has ${known.join(', ')}` : `it defines no ${kind}`}); a bare word always names a profile: for a ${kind === 'vcenters' ? 'host' : 'directory'} of that name give ${asValue}`);
}

/** The selector of a vCenter: --vcenter, else VMBKP_VCENTER, else defaults.vcenter; undefined when none is set. */
export function vcenterSelector(config: LoadedConfig, flag: string | undefined, env: Env = process.env, given = '--vcenter'): Setting<string> | undefined {
  if (flag !== undefined) return { value: flag, from: given };
  const e = envValue(env, VCENTER_ENV.vcenter);
  if (e !== undefined) return { value: e, from: VCENTER_ENV.vcenter };
  const d = config.data.defaults.vcenter;
  return d !== undefined ? { value: d, from: inFile(config, 'defaults.vcenter') } : undefined;
}

/** A profile's trust, when it sets one. */
function profileTrust(p: VcenterProfile): TrustSetting | undefined {
  return p.thumbprint !== undefined ? { kind: 'thumbprint', thumbprint: p.thumbprint }
    : p.caFile !== undefined ? { kind: 'ca', caFile: p.caFile }
    : p.insecure ? { kind: 'insecure' } : undefined;
}

/** At most one trust among explicit settings of one layer; `names` are how the user spelt them. */
function oneTrust(candidates: [TrustSetting | undefined, string][]): Setting<TrustSetting> | undefined {
  const given = candidates.filter((c): c is [TrustSetting, string] => c[0] !== undefined);
  if (given.length > 1) throw new UsageError(`${given.map((g) => g[1]).join(' and ')} exclude each other: give one way to trust the vCenter's certificate`);
  return given[0] ? { value: given[0][0], from: given[0][1] } : undefined;
}

/**
 * The vCenter a command works on, each setting with its origin; undefined when nothing
 * names one. `env` is undefined for a recipe's profile, which environment variables do not change.
 */
export function vcenterSettings(config: LoadedConfig, flags: VcenterFlags, env: Env | undefined = process.env): VcenterSettings | undefined {
  const selector = vcenterSelector(config, flags.vcenter, env ?? {}, flags.given);
  if (!selector) return undefined;
  const name = isProfileName(selector.value) ? selector.value : undefined;
  const p = name !== undefined ? profile<VcenterProfile>(config, 'vcenters', name, selector.from) : undefined;
  const from = inFile(config, `vcenters.${name ?? ''}`);
  const e = env ?? {};

  const userFlag = flags.user !== undefined ? { value: flags.user, from: '--user' } : undefined;
  const userEnv = envValue(e, VCENTER_ENV.user);
  const user = userFlag ?? (userEnv !== undefined ? { value: userEnv, from: VCENTER_ENV.user } : p ? { value: p.user, from } : undefined);

  const pwEnvFile = envValue(e, VCENTER_ENV.passwordFile);
  const pwEnvCommand = envValue(e, VCENTER_ENV.passwordCommand);
  const password: Setting<PasswordSetting> | undefined = flags.passwordFile !== undefined ? { value: { kind: 'file', file: flags.passwordFile }, from: '--password-file' }
    : pwEnvFile !== undefined ? { value: { kind: 'file', file: pwEnvFile }, from: VCENTER_ENV.passwordFile }
    : pwEnvCommand !== undefined ? { value: { kind: 'command', command: pwEnvCommand }, from: VCENTER_ENV.passwordCommand }
    : p?.passwordFile !== undefined ? { value: { kind: 'file', file: p.passwordFile }, from }
    : p?.passwordCommand !== undefined ? { value: { kind: 'command', command: p.passwordCommand }, from } : undefined;

  const envThumb = envValue(e, VCENTER_ENV.thumbprint);
  const envCa = envValue(e, VCENTER_ENV.caFile);
  const trust = oneTrust([
    [flags.thumbprint !== undefined ? { kind: 'thumbprint', thumbprint: flags.thumbprint } : undefined, '--thumbprint'],
    [flags.caFile !== undefined ? { kind: 'ca', caFile: flags.caFile } : undefined, '--ca-file'],
    [flags.insecure ? { kind: 'insecure' } : undefined, '--insecure'],
  ]) ?? oneTrust([
    [envThumb !== undefined ? { kind: 'thumbprint', thumbprint: envThumb } : undefined, VCENTER_ENV.thumbprint],
    [envCa !== undefined ? { kind: 'ca', caFile: envCa } : undefined, VCENTER_ENV.caFile],
    [envFlag(e, VCENTER_ENV.insecure) ? { kind: 'insecure' } : undefined, VCENTER_ENV.insecure],
  ]);
  const fromProfile = p ? profileTrust(p) : undefined;
  return {
    ...(name !== undefined ? { profile: name } : {}),
    url: p ? { value: p.url, from } : selector,
    ...(user ? { user } : {}),
    ...(password ? { password } : {}),
    trust: trust ?? (fromProfile ? { value: fromProfile, from } : { value: { kind: 'system' }, from: 'the default (the system CAs)' }),
  };
}

/** The login the settings describe; a usage error names each way to give what is missing. */
export function vcenterLoginOf(s: VcenterSettings): VcenterLogin {
  const inProfile = (key: string) => (s.profile !== undefined ? `, or ${key} in vcenters.${s.profile} of the config file` : '');
  if (!s.user) throw new UsageError(`no user for vCenter ${s.url.value}: give --user or ${VCENTER_ENV.user}${inProfile('user')}`);
  if (!s.password) {
    throw new UsageError(`no password for vCenter ${s.url.value}: give --password-file, ${VCENTER_ENV.passwordFile} or ${VCENTER_ENV.passwordCommand}`
      + inProfile('passwordFile or passwordCommand'));
  }
  const pw = s.password.value;
  const t = s.trust.value;
  return {
    vcenter: s.url.value, user: s.user.value,
    ...(pw.kind === 'file' ? { passwordFile: pw.file } : { passwordCommand: pw.command, passwordFrom: s.password.from }),
    ...(t.kind === 'thumbprint' ? { thumbprint: t.thumbprint } : t.kind === 'ca' ? { caFile: t.caFile } : t.kind === 'insecure' ? { insecure: true } : {}),
  };
}

/** The repository options as the command line has them (--repo, --repo-password-file; or --from-repo, --from-repo-password-file). */
export interface RepositoryFlags {
  readonly repo?: string | undefined;
  /** Where `repo` was given, for messages (default the flag). */
  readonly given?: string;
  readonly passwordFile?: string | undefined;
}

export interface RepositorySettings {
  readonly profile?: string;
  readonly location: Setting<string>;
  /** Where the password of an encrypted repository comes from; undefined: a prompt on a terminal, else none. */
  readonly password?: RepositoryPasswordSource;
}

/**
 * The repository a command works on (`which`: VMBKP_REPO) or copies from (VMBKP_FROM_REPO,
 * which has no default); undefined when nothing names one.
 */
export function repositorySettings(config: LoadedConfig, flags: RepositoryFlags, which: PasswordVariables = 'VMBKP_REPO',
  env: Env = process.env): RepositorySettings | undefined {
  const flag = which === 'VMBKP_REPO' ? '--repo' : '--from-repo';
  const e = envValue(env, which);
  const d = which === 'VMBKP_REPO' ? config.data.defaults.repository : undefined;
  const selector = flags.repo !== undefined ? { value: flags.repo, from: flags.given ?? flag } : e !== undefined ? { value: e, from: which }
    : d !== undefined ? { value: d, from: inFile(config, 'defaults.repository') } : undefined;
  if (!selector) return undefined;
  const name = isProfileName(selector.value) ? selector.value : undefined;
  const p = name !== undefined ? profile<RepositoryProfile>(config, 'repositories', name, selector.from) : undefined;
  const from = inFile(config, `repositories.${name ?? ''}`);
  const password: RepositoryPasswordSource | undefined = flags.passwordFile !== undefined ? { kind: 'file', file: flags.passwordFile, what: `${flag}-password-file` }
    : environmentPasswordSource(env, which)
    ?? (p?.passwordFile !== undefined ? { kind: 'file', file: p.passwordFile, what: `passwordFile of ${from}` }
      : p?.passwordCommand !== undefined ? { kind: 'command', command: p.passwordCommand, what: `passwordCommand of ${from}` } : undefined);
  return {
    ...(name !== undefined ? { profile: name } : {}),
    location: p ? { value: p.path, from } : selector,
    ...(password ? { password } : {}),
  };
}

/** What `config show` says of a password: a file's path, or which command; never the password. */
export function describePassword(p: PasswordSetting | RepositoryPasswordSource | undefined): string | null {
  if (p === undefined) return null;
  if (p.kind === 'file') return `file ${p.file}`;
  if (p.kind === 'command') return describeCommand(p.command);
  return `environment variable ${p.variable}`;
}

export function describeTrust(t: TrustSetting): string {
  switch (t.kind) {
    case 'system': return 'the system CAs';
    case 'thumbprint': return `thumbprint ${t.thumbprint}`;
    case 'ca': return `CA file ${t.caFile}`;
    case 'insecure': return 'none (insecure)';
  }
}

/** A repository profile as config show prints it. */
export function describeRepositoryProfile(p: RepositoryProfile): { path: string; password: string | null } {
  return {
    path: p.path,
    password: p.passwordFile !== undefined ? `file ${p.passwordFile}` : p.passwordCommand !== undefined ? describeCommand(p.passwordCommand) : null,
  };
}

/** A vCenter profile as config show prints it. */
export function describeVcenterProfile(p: VcenterProfile): { url: string; user: string; password: string | null; trust: string } {
  const t = profileTrust(p);
  return {
    url: p.url, user: p.user,
    password: p.passwordFile !== undefined ? `file ${p.passwordFile}` : p.passwordCommand !== undefined ? describeCommand(p.passwordCommand) : null,
    trust: describeTrust(t ?? { kind: 'system' }),
  };
}

/** The variables that change what vmbkp does, as config show lists them: secrets' commands masked. */
export const SETTINGS_ENV = [
  'VMBKP_CONFIG', ...Object.values(VCENTER_ENV),
  'VMBKP_REPO', 'VMBKP_REPO_PASSWORD_FILE', 'VMBKP_REPO_PASSWORD_COMMAND',
  'VMBKP_FROM_REPO', 'VMBKP_FROM_REPO_PASSWORD_FILE', 'VMBKP_FROM_REPO_PASSWORD_COMMAND',
  'VMBKP_NEW_REPO_PASSWORD_FILE', 'VMBKP_KDF_MEMORY', 'VMBKP_S3_CA_FILE',
  'VMBKP_TASK_STALL_TIMEOUT',
] as const;

export function environmentInEffect(env: Env = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of SETTINGS_ENV) {
    const v = envValue(env, name);
    if (v !== undefined) out[name] = name.endsWith('_COMMAND') ? describeCommand(v) : v;
  }
  return out;
}
