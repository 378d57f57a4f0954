/**
 * `vmbkp completion bash` sourced in a real bash completes commands, options and option
 * values: its completion function is called as bash calls it (COMP_WORDS, COMP_CWORD) and
 * COMPREPLY is read back. `vmbkp completion zsh` is parsed (zsh -n) and loaded by zsh's
 * compinit, when zsh is installed.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { run, tempDir, vmbkp } from './helpers.js';

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Visible long options of a command of the program, as --help lists them. */
function longOptions(cmd: Command): string[] {
  return cmd.options.filter((o) => !o.hidden && o.long).map((o) => o.long!);
}

describe('shell completion', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let script: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    const r = await vmbkp(['completion', 'bash']);
    assert.equal(r.code, 0, r.stderr);
    script = path.join(dir, 'vmbkp.bash');
    await fs.writeFile(script, r.stdout);
    await fs.mkdir(path.join(dir, 'repos', 'offsite'), { recursive: true });
    await fs.writeFile(path.join(dir, 'repos', 'recipe.yaml'), 'kind: backup\n');
  });
  after(() => cleanup());

  /** What bash completes for the command line `words`, the cursor in the last word. */
  async function complete(words: string[]): Promise<string[]> {
    const body = [
      `source ${shellQuote(script)}`,
      `COMP_WORDS=(${words.map(shellQuote).join(' ')})`,
      `COMP_CWORD=${words.length - 1}`,
      'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}',
      // The function complete -F registered for vmbkp, as bash would call it.
      'fn=$(complete -p vmbkp | sed -E "s/.*-F ([^ ]+).*/\\1/")',
      '"$fn" vmbkp "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const r = await run('bash', ['--norc', '--noprofile', '-c', body], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    return r.stdout.split('\n').filter(Boolean).sort();
  }

  it('completes the commands, and a command from its first letters', async () => {
    const program = buildProgram();
    assert.deepEqual(await complete(['vmbkp', 'ba']), ['backup']);
    assert.deepEqual(await complete(['vmbkp', 'co']), ['completion', 'config', 'copy']);
    assert.deepEqual(await complete(['vmbkp', '']), program.commands.map((c) => c.name()).sort());
    // Subcommands, after global options too.
    assert.deepEqual(await complete(['vmbkp', '--quiet', 'key', '']), ['add', 'export', 'list', 'passwd', 'remove']);
  });

  it('completes every option of backup and restore, and one from its first letters', async () => {
    const program = buildProgram();
    for (const name of ['backup', 'restore']) {
      const cmd = program.commands.find((c) => c.name() === name)!;
      const offered = await complete(['vmbkp', name, '--']);
      for (const o of [...longOptions(cmd), '--quiet', '--verbose', '--help']) assert.ok(offered.includes(o), `vmbkp ${name} --<TAB> lacks ${o}: ${offered.join(' ')}`);
    }
    assert.deepEqual(await complete(['vmbkp', 'restore', '--ge']), ['--generation']);
    assert.deepEqual(await complete(['vmbkp', 'backup', '--set', 'web', '--mo']), ['--mode']);
    // The options of the command named, not of another.
    assert.deepEqual(await complete(['vmbkp', 'key', 'add', '--la']), ['--label']);
    assert.deepEqual(await complete(['vmbkp', 'gc', '--la']), []);
    // A hidden option (run refuses --repo: the recipe names the repository) is not offered.
    assert.ok(!(await complete(['vmbkp', 'run', '--']).then((o) => o.includes('--repo'))));
  });

  it('completes option values: modes, transports, directories and files', async () => {
    assert.deepEqual(await complete(['vmbkp', 'backup', '--mode', '']), ['auto', 'diff', 'full', 'incr']);
    assert.deepEqual(await complete(['vmbkp', 'backup', '--mode', 'i']), ['incr']);
    // bash splits "--transport=h" at the "=".
    assert.deepEqual(await complete(['vmbkp', 'restore', '--transport', '=', '']), ['https', 'nfc', 'vddk']);
    assert.deepEqual(await complete(['vmbkp', 'restore', '--transport', '=', 'v']), ['vddk']);
    // Backups read and restores write over nfc too.
    assert.deepEqual(await complete(['vmbkp', 'backup', '--transport', '']), ['https', 'nfc', 'vddk']);
    // A value is not taken for a command: "backup" here is the set's name.
    assert.deepEqual(await complete(['vmbkp', 'list', '--set', 'backup', '--j']), ['--json']);
    assert.deepEqual(await complete(['vmbkp', 'list', '--repo', 'repos/']), ['repos/offsite']);
    assert.deepEqual(await complete(['vmbkp', 'run', 'repos/']), ['repos/offsite', 'repos/recipe.yaml']);
    assert.deepEqual(await complete(['vmbkp', 'backup', '--password-file', 'repos/rec']), ['repos/recipe.yaml']);
    assert.deepEqual(await complete(['vmbkp', 'completion', '']), ['bash', 'zsh']);
  });

  it('zsh parses and loads the zsh script', async (t) => {
    if ((await run('sh', ['-c', 'command -v zsh'])).code !== 0) {
      t.skip('zsh is not installed');
      return;
    }
    const r = await vmbkp(['completion', 'zsh']);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(dir, '_vmbkp');
    await fs.writeFile(file, r.stdout);
    const parsed = await run('zsh', ['-n', file]);
    assert.equal(parsed.code, 0, parsed.stderr);
    const loaded = await run('zsh', ['-f', '-c', `autoload -U compinit && compinit -u -d ${shellQuote(path.join(dir, 'zcompdump'))} && source ${shellQuote(file)} && print -r -- $_comps[vmbkp] && whence -w _vmbkp_backup _vmbkp_key_add`]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stderr, '');
    assert.match(loaded.stdout, /^_vmbkp\n_vmbkp_backup: function\n_vmbkp_key_add: function\n$/);
  });
});
