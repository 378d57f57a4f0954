/** `vmbkp serve` started the way a user starts it, for the tests that connect clients to it. */
import { type RunResult, type StartedCli, startVmbkp } from './helpers.js';

export interface ServedJson {
  uri: string; set: string; generation: number; disk: string; size: number; writable: boolean;
  tls: false | { clientCertificate: boolean };
}

export interface Served {
  readonly cli: StartedCli;
  /** The ready line as printed. */
  readonly line: string;
  readonly info: ServedJson;
  stderr(): string;
  /** Sends the signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

/** Starts `vmbkp serve` and waits for its ready line on stdout. */
export async function startServe(args: string[], json = true): Promise<Served> {
  const cli = startVmbkp(['serve', ...args, ...(json ? ['--json'] : [])]);
  let out = '';
  let err = '';
  cli.child.stderr!.on('data', (d) => { err += d; });
  const line = await new Promise<string>((resolve, reject) => {
    cli.child.stdout!.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) resolve(out.slice(0, i));
    });
    cli.done.then((r) => reject(new Error(`vmbkp serve exited (${r.code}) before it was ready: ${r.stderr}`)), reject);
  });
  const info: ServedJson = json ? JSON.parse(line) as ServedJson : { uri: line.replace(/^.* at /, ''), set: '', generation: 0, disk: '', size: 0, writable: false, tls: false };
  return {
    cli, line, info,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      cli.child.kill(signal);
      return cli.done;
    },
  };
}
