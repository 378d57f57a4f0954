/**
 * Every error vmbkp raises on purpose is a VmbkpError with a stable `code`.
 * The CLI maps codes to exit codes; messages name the object, the operation and the cause.
 */
export type ErrorCode =
  | 'USAGE'              // bad command line or option values
  | 'INPUT_INVALID'      // an input file or argument is malformed (extents JSON, disk spec)
  | 'NOT_FOUND'          // a named set, generation, disk or file does not exist
  | 'ALREADY_EXISTS'     // write-once object or target exists
  | 'REPO_NOT_FOUND'     // no repository at the given location
  | 'REPO_UNSUPPORTED'   // repository format version this build does not know
  | 'REPO_LOCKED'        // a conflicting lock is held
  | 'REPO_DAMAGED'       // missing or corrupt data in the repository
  | 'IO'                 // reading a source, writing a target, or storage I/O failed
  | 'AUTH'               // a server refused the credentials, or its certificate is not the trusted one
  | 'REPO_PASSWORD'      // the repository password opens none of its keys
  | 'PARTIAL'            // some parts of a job failed, others succeeded
  | 'HOOK_FAILED'        // a recipe's pre or post hook exited with an error
  | 'CANCELLED'          // the work was cancelled (a server job's cancel)
  | 'INTERNAL';

export class VmbkpError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class UsageError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('USAGE', message, options); }
}
export class InputError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('INPUT_INVALID', message, options); }
}
export class NotFoundError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('NOT_FOUND', message, options); }
}
export class AlreadyExistsError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('ALREADY_EXISTS', message, options); }
}
export class RepositoryNotFoundError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('REPO_NOT_FOUND', message, options); }
}
export class UnsupportedFormatError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('REPO_UNSUPPORTED', message, options); }
}
export class RepositoryLockedError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('REPO_LOCKED', message, options); }
}
export class RepositoryDamagedError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('REPO_DAMAGED', message, options); }
}
export class IoError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('IO', message, options); }
}
export class AuthError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('AUTH', message, options); }
}
export class WrongPasswordError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('REPO_PASSWORD', message, options); }
}
export class HookError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('HOOK_FAILED', message, options); }
}
export class CancelledError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('CANCELLED', message, options); }
}
export class PartialFailureError extends VmbkpError {
  constructor(message: string, options?: { cause?: unknown }) { super('PARTIAL', message, options); }
}

/** A short description of an unknown thrown value, for use after "failed: ". */
export function describeCause(cause: unknown): string {
  if (cause instanceof VmbkpError) return cause.message;
  if (cause instanceof Error) {
    // OpenSSL's errors carry a multi-line text of library internals; the reason alone says it.
    const { reason, library } = cause as { reason?: unknown; library?: unknown };
    if (typeof reason === 'string' && typeof library === 'string') return `${reason} (${(cause as NodeJS.ErrnoException).code ?? library})`;
    const errno = (cause as NodeJS.ErrnoException).code;
    return errno && !cause.message.startsWith(errno) ? `${errno}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

/** A failure as reports carry it: the error's stable code ('INTERNAL' for others) and its one-line message. */
export function errorRecord(err: unknown): { code: string; message: string } {
  return { code: err instanceof VmbkpError ? err.code : 'INTERNAL', message: describeCause(err) };
}

/** The same error with a note on what became of what it was working on; its code (and exit code) is kept. */
export function withNote(err: unknown, note: string): Error {
  if (err instanceof VmbkpError) return new VmbkpError(err.code, `${err.message} (${note})`, { cause: err });
  return new IoError(`${describeCause(err)} (${note})`, { cause: err });
}

/** Fails with "WHAT was interrupted (REASON)" once `signal` has fired. */
export function checkInterrupted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new IoError(`${what} was interrupted (${String(signal.reason ?? 'aborted')})`);
}
