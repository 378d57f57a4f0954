/**
 * The vmbkp command line. The only layer that prints. Errors become one line on stderr
 * and an exit code from exit-codes.ts.
 */
import { Command, CommanderError } from 'commander';
import { VmbkpError, describeCause } from '../errors.js';
import { register as registerBackup } from './commands/backup.js';
import { register as registerConfig } from './commands/config.js';
import { register as registerCopy } from './commands/copy.js';
import { register as registerInit } from './commands/init.js';
import { register as registerKey } from './commands/key.js';
import { register as registerList } from './commands/list.js';
import { register as registerMaintenance } from './commands/maintenance.js';
import { register as registerRestore } from './commands/restore.js';
import { register as registerRun } from './commands/run.js';
import { register as registerServe } from './commands/serve.js';
import { setConfigFlag } from './context.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';

export function buildProgram(): Command {
  const program = new Command('vmbkp')
    .description('online backup and restore of vSphere VMs and disk images: deduplicated, compressed, every generation a synthetic full')
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .option('--config <file>', 'the config file of named vCenters and repositories (or set VMBKP_CONFIG; default ~/.config/vmbkp/config.yaml, then /etc/vmbkp/config.yaml)')
    // A global option, before or after the command: read once, here, for every command.
    .hook('preAction', (self) => setConfigFlag(self.opts<{ config?: string }>().config))
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  registerInit(program);
  registerBackup(program);
  registerList(program);
  registerRestore(program);
  registerServe(program);
  registerMaintenance(program);
  registerRun(program);
  registerCopy(program);
  registerKey(program);
  registerConfig(program);
  // Every command takes the repository and --json; options may come before or after arguments.
  // A command with subcommands (key) passes them to each subcommand.
  const leaves = (cmds: readonly Command[]): Command[] => cmds.flatMap((c) => (c.commands.length > 0 ? leaves(c.commands) : [c]));
  for (const group of program.commands.filter((c) => c.commands.length > 0)) group.exitOverride().configureOutput({ outputError: () => {} });
  for (const cmd of leaves(program.commands)) {
    cmd.option('--repo <dir|name>', 'repository: a directory, s3:https://HOST[:PORT]/BUCKET[/PREFIX], or the name of one in the config file (or set VMBKP_REPO, or defaults.repository)')
      .option('--repo-password-file <file>', 'file holding the repository password (first line); or set VMBKP_REPO_PASSWORD_FILE or VMBKP_REPO_PASSWORD_COMMAND')
      .option('--json', 'print the result as JSON, and nothing else on stdout')
      .exitOverride()
      .configureOutput({ outputError: () => {} });
  }
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
