/**
 * The vmbkp command line. The only layer that prints. Errors become one line on stderr
 * and an exit code from exit-codes.ts.
 */
import { Command, CommanderError } from 'commander';
import { UsageError, VmbkpError, describeCause } from '../errors.js';
import { register as registerBackup } from './commands/backup.js';
import { register as registerCompletion } from './commands/completion.js';
import { register as registerConfig } from './commands/config.js';
import { register as registerCopy } from './commands/copy.js';
import { register as registerFiles } from './commands/files.js';
import { register as registerInit } from './commands/init.js';
import { register as registerKey } from './commands/key.js';
import { register as registerList } from './commands/list.js';
import { register as registerMaintenance } from './commands/maintenance.js';
import { register as registerRestore } from './commands/restore.js';
import { register as registerRun } from './commands/run.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerServer } from './commands/server.js';
import { register as registerStatus } from './commands/status.js';
import { setCommand, setConfigFlag } from './context.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { setVerbosity } from './log.js';

export function buildProgram(): Command {
  const program = new Command('vmbkp')
    .description('online backup and restore of vSphere VMs and disk images: deduplicated, compressed, every generation a synthetic full')
    .version('0.1.0')
    .option('-q, --quiet', 'print only errors on stderr, and of what a command did only its --json result')
    .option('-v, --verbose', 'also print the steps of a command and their details on stderr')
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true })
    .option('--config <file>', 'the config file of named vCenters and repositories (or set VMBKP_CONFIG; default ~/.config/vmbkp/config.yaml, then /etc/vmbkp/config.yaml)')
    // A global option, before or after the command: read once, here, for every command.
    .hook('preAction', (self) => setConfigFlag(self.opts<{ config?: string }>().config))
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .hook('preAction', (_, action) => {
      const o = action.optsWithGlobals<{ quiet?: boolean; verbose?: boolean; dryRun?: boolean }>();
      if (o.quiet && o.verbose) throw new UsageError('--quiet and --verbose exclude each other');
      setVerbosity(o.quiet ? 'quiet' : o.verbose ? 'verbose' : 'normal');
      const path: string[] = [];
      for (let c: Command | null = action; c && c !== program; c = c.parent) path.unshift(c.name());
      setCommand(path.join(' '), !!o.dryRun);
    });
  registerInit(program);
  registerBackup(program);
  registerList(program);
  registerRestore(program);
  registerServe(program);
  registerFiles(program);
  registerMaintenance(program);
  registerRun(program);
  registerCopy(program);
  registerKey(program);
  registerStatus(program);
  registerConfig(program);
  registerServer(program);
  // Every command takes the repository and --json; options may come before or after arguments.
  // A command with subcommands (key) passes them to each subcommand.
  const leaves = (cmds: readonly Command[]): Command[] => cmds.flatMap((c) => (c.commands.length > 0 ? leaves(c.commands) : [c]));
  for (const group of program.commands.filter((c) => c.commands.length > 0)) group.exitOverride().configureOutput({ outputError: () => {} });
  // A command that declared one of them itself (run: a hidden --repo it refuses with a reason) keeps its own.
  const shared = (cmd: Command, flags: string, description: string) => {
    if (!cmd.options.some((o) => o.long === flags.split(' ')[0])) cmd.option(flags, description);
  };
  for (const cmd of leaves(program.commands)) {
    shared(cmd, '--repo <dir|name>', 'repository: a directory, s3:https://HOST[:PORT]/BUCKET[/PREFIX], or the name of one in the config file (or set VMBKP_REPO, or defaults.repository)');
    shared(cmd, '--repo-password-file <file>', 'file holding the repository password (first line); or set VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND');
    shared(cmd, '--json', 'print the result as JSON, and nothing else on stdout');
    cmd.exitOverride().configureOutput({ outputError: () => {} });
  }
  // After the loop: completion takes no repository.
  registerCompletion(program);
  program.commands.at(-1)!.exitOverride().configureOutput({ outputError: () => {} });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      // One line, suggestion included ("… (Did you mean backup?)").
      process.stderr.write(`vmbkp: error: ${err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')}\n`);
      return ExitCode.USAGE;
    }
    if (err instanceof VmbkpError) {
      process.stderr.write(`vmbkp: error: ${err.message}\n`);
      return exitCodeFor(err.code);
    }
    process.stderr.write(`vmbkp: error: ${describeCause(err)}\n`);
    if (process.env['VMBKP_DEBUG']) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    return ExitCode.FAILURE;
  }
}
