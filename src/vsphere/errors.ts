/** vSphere's faults as typed errors: `fault` is vSphere's fault type (InvalidLogin, NotAuthenticated, FileFault …). */
import { type ErrorCode, VmbkpError } from '../errors.js';

function codeFor(fault: string): ErrorCode {
  switch (fault) {
    case 'InvalidLogin':
    case 'NotAuthenticated':
    case 'NoPermission':
      return 'AUTH';
    case 'ManagedObjectNotFound':
    case 'NotFound':
      return 'NOT_FOUND';
    default:
      return 'IO';
  }
}

export class VsphereFaultError extends VmbkpError {
  readonly fault: string;
  constructor(message: string, fault: string, options?: { cause?: unknown }) {
    super(codeFor(fault), message, options);
    this.fault = fault;
  }
}

/** The fault type of an error, when it is a vSphere fault. */
export function faultOf(err: unknown): string | undefined {
  return err instanceof VsphereFaultError ? err.fault : undefined;
}
