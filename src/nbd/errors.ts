/** NBD errors: a server's error reply, or a protocol violation, or a connection that failed. */
import { IoError } from '../errors.js';
import { Errno, RepError } from './constants.js';

/** The server answered a request or an option with an error. `nbdError` is its name (EIO, NBD_REP_ERR_UNSUP, …). */
export class NbdServerError extends IoError {
  readonly nbdError: string;
  constructor(message: string, nbdError: string) {
    super(`${message}: the server answered ${nbdError}`);
    this.nbdError = nbdError;
  }
}

/** The server broke the protocol (bad magic, unknown cookie, truncated reply), or did not answer in time. */
export class NbdProtocolError extends IoError {}

export function errnoName(n: number): string {
  return Errno[n] ?? `error ${n}`;
}

export function repErrorName(n: number): string {
  return RepError[n & 0x7fffffff] ?? `NBD_REP_ERR ${n & 0x7fffffff}`;
}
