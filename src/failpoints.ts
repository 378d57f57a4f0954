/**
 * Failpoints let crash-safety tests stop a real process at a named point of an operation.
 * VMBKP_FAILPOINT=NAME[:ACTION][,…] where ACTION is `kill` (SIGKILL itself, the default) or
 * `pause` (wait until SIGUSR2, so a test can observe the state, act, then let it go on).
 * Unset in normal use, where a failpoint costs one lookup.
 */
const spec = parse(process.env['VMBKP_FAILPOINT']);

function parse(value: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    // Names contain ':' themselves ("gc:index-written"); an action is a known last word.
    const at = part.lastIndexOf(':');
    const action = part.slice(at + 1);
    if (at > 0 && (action === 'kill' || action === 'pause')) map.set(part.slice(0, at), action);
    else map.set(part, 'kill');
  }
  return map;
}

export async function failpoint(name: string): Promise<void> {
  const action = spec.get(name);
  if (action === undefined) return;
  if (action === 'kill') {
    process.kill(process.pid, 'SIGKILL');
  }
  if (action === 'pause') {
    const keepAlive = setInterval(() => {}, 1 << 30);
    await new Promise<void>((resolve) => {
      process.once('SIGUSR2', () => resolve());
      process.stderr.write(`failpoint ${name}: paused\n`);
    });
    clearInterval(keepAlive);
  }
}
