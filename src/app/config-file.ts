/**
 * Finding and reading the config file: --config FILE, else $VMBKP_CONFIG, else
 * ~/.config/vmbkp/config.yaml, else /etc/vmbkp/config.yaml. A file named explicitly (the
 * flag or the variable) must exist; a missing default file just means no profiles. Every
 * problem names the file, its line and the field, as recipes' do.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { InputError, UsageError, describeCause } from '../errors.js';
import type { ConfigData } from './config-schema.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The config in effect: where it came from, and its profiles (none without a file). */
export interface LoadedConfig {
  /** The file read; undefined when no file was given and no default file exists. */
  readonly file: string | undefined;
  /** How the file was chosen: "--config", "VMBKP_CONFIG", "default". */
  readonly source: 'flag' | 'env' | 'default';
  /** The places looked at, in order (for config show and messages). */
  readonly searched: readonly string[];
  readonly data: ConfigData;
}

/** The default places, in order: the user's, then the host's. */
export function defaultConfigFiles(env: Env = process.env): string[] {
  const xdg = env['XDG_CONFIG_HOME'];
  const home = env['HOME'] || homedir();
  return [path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.config'), 'vmbkp/config.yaml'), '/etc/vmbkp/config.yaml'];
}

/** Most runs have no config file: its parser, schema and YAML load only when there is one. */
async function parseConfigText(text: string, file: string): Promise<ConfigData> {
  return (await import('./config-parse.js')).parseConfig(text, file);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`reading config ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}

/** Finds and reads the config (`flag`: the value of --config). */
export async function loadConfig(flag: string | undefined, env: Env = process.env): Promise<LoadedConfig> {
  const explicit = flag !== undefined ? { file: flag, source: 'flag' as const, what: '--config' }
    : env['VMBKP_CONFIG'] ? { file: env['VMBKP_CONFIG'], source: 'env' as const, what: 'VMBKP_CONFIG' } : undefined;
  if (explicit) {
    if (explicit.file === '') throw new UsageError('--config needs a file');
    const text = await readIfExists(explicit.file);
    if (text === undefined) throw new UsageError(`config ${explicit.file} (${explicit.what}) does not exist`);
    return { file: explicit.file, source: explicit.source, searched: [explicit.file], data: await parseConfigText(text, explicit.file) };
  }
  const searched = defaultConfigFiles(env);
  for (const file of searched) {
    const text = await readIfExists(file);
    if (text !== undefined) return { file, source: 'default', searched, data: await parseConfigText(text, file) };
  }
  return { file: undefined, source: 'default', searched, data: { vcenters: {}, repositories: {}, defaults: {} } };
}
