/**
 * A secret printed by a command (a secret store: `pass show vc`, a vault client). A list is
 * a program and its arguments, run without a shell; a string is run by /bin/sh (as
 * VMBKP_REPO_PASSWORD_COMMAND always was). The first line of its stdout is the secret; its
 * stderr goes to ours. Messages name the command's source, never its output.
 */
import { spawn } from 'node:child_process';
import { InputError, describeCause } from '../errors.js';
import { firstLine } from '../recipe/password.js';

export type SecretCommand = string | readonly string[];

/** `what` says whose secret and where the command was given: "the repository password command (VMBKP_REPO_PASSWORD_COMMAND)". */
export function runSecretCommand(command: SecretCommand, what: string, secret = 'password'): Promise<string> {
  const [program, args] = typeof command === 'string' ? ['/bin/sh', ['-c', command]] : [command[0] ?? '', command.slice(1)];
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('error', (err) => reject(new InputError(`running ${what} failed: ${describeCause(err)}`, { cause: err })));
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new InputError(`${what} failed: ${signal ? `killed by ${signal}` : `exit code ${code}`}`));
        return;
      }
      const value = firstLine(Buffer.concat(out).toString('utf8'));
      if (value === '') reject(new InputError(`${what} gave an empty ${secret}`));
      else resolve(value);
    });
  });
}

/** What `config show` says of a command: its program, never what it prints (nor the rest of a shell line). */
export function describeCommand(command: SecretCommand): string {
  const program = typeof command === 'string' ? command.trim().split(/\s+/)[0] ?? '' : command[0] ?? '';
  return `a command (${typeof command === 'string' ? 'shell line starting' : 'program'} ${JSON.stringify(program)})`;
}
