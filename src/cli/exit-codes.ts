/** Exit codes, documented in the README. Stable: scripts and cron wrappers depend on them. */
import type { ErrorCode } from '../errors.js';

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  PARTIAL: 3,
  LOCKED: 4,
  DAMAGED: 5,
  NO_REPOSITORY: 6,
  AUTH: 7,
  WRONG_PASSWORD: 8,
} as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
    case 'INPUT_INVALID':
    case 'NOT_FOUND':
    case 'ALREADY_EXISTS':
      return ExitCode.USAGE;
    case 'PARTIAL':
      return ExitCode.PARTIAL;
    case 'REPO_LOCKED':
      return ExitCode.LOCKED;
    case 'REPO_DAMAGED':
      return ExitCode.DAMAGED;
    case 'REPO_NOT_FOUND':
    case 'REPO_UNSUPPORTED':
      return ExitCode.NO_REPOSITORY;
    case 'AUTH':
      return ExitCode.AUTH;
    case 'REPO_PASSWORD':
      return ExitCode.WRONG_PASSWORD;
    case 'IO':
    case 'HOOK_FAILED':
    case 'CANCELLED':
    case 'INTERNAL':
      return ExitCode.FAILURE;
  }
}
