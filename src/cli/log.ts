/**
 * What the command line says on stderr besides its final error: warnings, notices and, under
 * --verbose, steps. --quiet leaves only errors. Off a terminal (cron, a log file) each line
 * starts with its ISO time, so that a log read later says when; on a terminal it does not.
 * VMBKP_LOG_TIME=always|never overrides that (never: a log collector such as journald stamps
 * lines itself, and it is detected by JOURNAL_STREAM).
 */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

let verbosity: Verbosity = 'normal';

export function setVerbosity(v: Verbosity): void {
  verbosity = v;
}

export function getVerbosity(): Verbosity {
  return verbosity;
}

/** Whether log lines carry a time: off a terminal, unless overridden or a journal stamps them. */
export function stampsTime(env: NodeJS.ProcessEnv = process.env, isTTY = !!process.stderr.isTTY): boolean {
  const mode = env['VMBKP_LOG_TIME'];
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return !isTTY && !env['JOURNAL_STREAM'];
}

/** One log line as written: "[TIME ]vmbkp: TEXT\n". */
export function logLine(text: string, time: Date | undefined): string {
  return `${time ? `${time.toISOString()} ` : ''}vmbkp: ${text}\n`;
}

function write(text: string): void {
  process.stderr.write(logLine(text, stampsTime() ? new Date() : undefined));
}

/** Something the user should know about (a fallback, a risk): shown unless --quiet. */
export function warn(message: string): void {
  if (verbosity !== 'quiet') write(`warning: ${message}`);
}

/** A fact about the run that is not a problem (retried requests): shown unless --quiet. */
export function notice(message: string): void {
  if (verbosity !== 'quiet') write(message);
}

/** A step or detail of the run: shown only under --verbose. */
export function step(message: string): void {
  if (verbosity === 'verbose') write(message);
}
