/**
 * The modes a backup may be asked for. Apart from generation.ts (whose schema uses them) so
 * that the command line checks --mode without loading the repository's schemas first.
 */
export const REQUESTED_MODES = ['auto', 'full', 'diff', 'incr'] as const;
export type RequestedModeName = (typeof REQUESTED_MODES)[number];

export function isRequestedMode(value: unknown): value is RequestedModeName {
  return (REQUESTED_MODES as readonly unknown[]).includes(value);
}
