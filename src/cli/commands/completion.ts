/** `vmbkp completion bash|zsh`: a completion script for the shell, from the program's own definition. */
import { Argument, type Command } from 'commander';
import { bashScript, zshScript } from '../completion.js';

export function register(program: Command): void {
  program.command('completion')
    .description('print a shell completion script: source <(vmbkp completion bash), or zsh')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: string) => {
      process.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    });
}
