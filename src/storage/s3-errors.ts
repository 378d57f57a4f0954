/** What an S3 request's failure was, in words and as a code: the SDK's errors and Node's network errors alike. */

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

function asSdk(err: unknown): SdkError {
  return typeof err === 'object' && err !== null ? (err as SdkError) : {};
}

/**
 * A stable name for the failure: the S3 error code ("NoSuchKey", "SlowDown", "AccessDenied"),
 * a network error code ("ECONNRESET"), or "HTTP <status>" when the server said no more.
 */
export function s3ErrorCode(err: unknown): string {
  const e = asSdk(err);
  if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  const status = e.$metadata?.httpStatusCode;
  if (e.name && e.name !== 'Error' && e.name !== 'Unknown' && e.name !== 'UnknownError' && !(status !== undefined && /^\d+$/.test(e.name))) return e.name;
  if (status !== undefined) return `HTTP ${status}`;
  return e.name ?? 'Error';
}

const RETRYABLE_CODES = new Set([
  'SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeoutException', 'Throttling',
  'ThrottlingException', 'TooManyRequestsException', 'ConditionalRequestConflict', 'OperationAborted', 'TimeoutError',
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
]);

/** The cause to count when a request is worth trying again, else undefined. */
export function s3Retryable(err: unknown): string | undefined {
  const code = s3ErrorCode(err);
  if (RETRYABLE_CODES.has(code)) return code;
  const status = asSdk(err).$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return code;
  // A response cut off in the middle surfaces as the stream's own error.
  const message = asSdk(err).message ?? '';
  if (/socket hang up|aborted|premature close/i.test(message)) return 'connection cut';
  return undefined;
}

/** One line: the code, the status and the server's message. */
export function describeS3Error(err: unknown): string {
  const e = asSdk(err);
  const code = s3ErrorCode(err);
  const status = e.$metadata?.httpStatusCode;
  const message = (e.message ?? '').split('\n')[0]!.trim();
  const head = status !== undefined && !code.startsWith('HTTP') ? `${code} (HTTP ${status})` : code;
  return message && message !== code && message !== 'UnknownError' ? `${head}: ${message}` : head;
}
