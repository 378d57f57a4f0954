/**
 * Graceful stop on the first SIGINT or SIGTERM: `onStop` says so and the signal aborts,
 * so the job cleans up (a half-made VM is destroyed). The handlers are `once`, so a
 * second signal kills the process as Node does by default.
 */
export function stopOnSignals(onStop: (sig: NodeJS.Signals) => void): { readonly signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    onStop(sig);
    stop.abort(sig);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return {
    signal: stop.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
