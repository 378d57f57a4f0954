/**
 * Failpoints let crash-safety tests stop a real process at a named point of an operation.
 * VMBKP_FAILPOINT=NAME[:ACTION][,…] where ACTION is `kill` (SIGKILL itself, the default) or
 * `pause` (wait forever, so a test can observe the state or start a competing command).
 * Unset in normal use, where a failpoint costs one lookup.
 */
const spec = parse(process.env['VMBKP_FAILPOINT']);

function parse(value: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    const [name, action = 'kill'] = part.split(':');
    if (name) map.set(name, action);
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
    process.stderr.write(`failpoint ${name}: paused\n`);
    await new Promise(() => { setInterval(() => {}, 1 << 30); });
  }
}
