/**
 * No option that --help lists is refused by its command: every command of the program
 * definition is run with each of its listed options (and a value where it takes one), and
 * whatever fails, it must not fail because the command does not take that option. The
 * commands run in this process on a real, empty repository; their other failures (a value
 * that is no number, a set that does not exist) are fine.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command, Option } from 'commander';
import { buildProgram, main } from '../src/cli/main.js';
import { tempDir, vmbkp } from './helpers.js';

/** How the CLI words "you may not give this option here". */
function refuses(stderr: string, flag: string): boolean {
  const f = flag.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return new RegExp(`unknown option '${f}'|takes no [^:]*${f}\\b|not from ${f}\\b|does not take [^:]*${f}\\b|${f} is not (taken|accepted)`).test(stderr);
}

function leaves(cmd: Command, path: string[] = []): { cmd: Command; path: string[] }[] {
  return cmd.commands.flatMap((c) => (c.commands.length > 0 ? leaves(c, [...path, c.name()]) : [{ cmd: c, path: [...path, c.name()] }]));
}

/** Runs the CLI in this process; returns the exit code and what it wrote. */
async function inProcess(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const writeErr = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((chunk: string | Uint8Array) => { stderr += String(chunk); return true; }) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    const code = await main(['node', 'vmbkp', ...args]);
    return { code, stderr };
  } finally {
    process.stderr.write = writeErr;
    process.stdout.write = writeOut;
  }
}

describe('help audit', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  const saved = process.env['VMBKP_REPO'];
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
    process.env['VMBKP_REPO'] = repo;
  });
  after(async () => {
    if (saved === undefined) delete process.env['VMBKP_REPO'];
    else process.env['VMBKP_REPO'] = saved;
    await cleanup();
  });

  /** A value for an option or argument: a choice it declares, the repository, else a path in the test's directory. */
  function value(o: Pick<Option, 'long' | 'argChoices'> | undefined): string {
    if (o?.argChoices?.[0]) return o.argChoices[0];
    if (o?.long === '--repo') return repo;
    return path.join(dir, 'dummy');
  }

  /** The command line for `cmd` with its required arguments and options, plus `extra`. */
  function line(p: string[], cmd: Command, extra: string[]): string[] {
    const args = cmd.registeredArguments.filter((a) => a.required).map((a) => a.argChoices?.[0] ?? path.join(dir, 'dummy'));
    const required = cmd.options.filter((o) => o.mandatory && !extra.includes(o.long!)).flatMap((o) => [o.long!, value(o)]);
    return [...p, ...args, ...required, ...extra];
  }

  it('every option --help lists is taken by its command', async () => {
    const program = buildProgram();
    const refused: string[] = [];
    let runs = 0;
    for (const { cmd, path: p } of leaves(program)) {
      const listed = [...cmd.options.filter((o) => !o.hidden), ...program.options.filter((o) => o.long !== '--version')];
      for (const o of listed) {
        const flag = o.long!;
        const argv = line(p, cmd, o.required ? [flag, value(o)] : [flag]);
        const r = await inProcess(argv);
        runs++;
        if (refuses(r.stderr, flag)) refused.push(`vmbkp ${argv.join(' ')}: ${r.stderr.trim()}`);
      }
    }
    assert.ok(runs > 100, `only ${runs} runs: the walk of the program missed its commands`);
    assert.deepEqual(refused, []);
  });

  it('the audit recognises a refusal: the option run hides is refused with its reason', async () => {
    // The control: run refuses --repo (the recipe names the repository) and so does not list it.
    const program = buildProgram();
    const run = program.commands.find((c) => c.name() === 'run')!;
    const repoOption = run.options.find((o) => o.long === '--repo')!;
    assert.equal(repoOption.hidden, true);
    const r = await inProcess(line(['run'], run, ['--repo', repo]));
    assert.equal(r.code, 2);
    assert.ok(refuses(r.stderr, '--repo'), r.stderr);
    const unknown = await inProcess(['gc', '--nope']);
    assert.ok(refuses(unknown.stderr, '--nope'), unknown.stderr);
    const help = await vmbkp(['run', '--help']);
    assert.doesNotMatch(help.stdout, /--repo </);
  });
});
