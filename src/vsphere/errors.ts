/** vSphere's faults as typed errors: `fault` is vSphere's fault type (InvalidLogin, NotAuthenticated, FileFault …). */
import { type ErrorCode, VmbkpError } from '../errors.js';
import { type MoRef, type XmlNode, childNs, moRefOf, text } from './xml.js';

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

/** What a NoPermission fault says is missing: the privilege, and the entity it is needed on. */
export interface MissingPrivilege {
  readonly privilege: string;
  readonly object: MoRef | undefined;
}

export class VsphereFaultError extends VmbkpError {
  readonly fault: string;
  readonly missing: MissingPrivilege | undefined;
  constructor(message: string, fault: string, options?: { cause?: unknown; missing?: MissingPrivilege }) {
    super(codeFor(fault), message, options);
    this.fault = fault;
    this.missing = options?.missing;
  }
}

/** The fault type of an error, when it is a vSphere fault. */
export function faultOf(err: unknown): string | undefined {
  return err instanceof VsphereFaultError ? err.fault : undefined;
}

/** The privilege a NoPermission fault element (or a subtype's) names, if it names one. */
export function missingPrivilegeOf(fault: XmlNode | undefined): MissingPrivilege | undefined {
  const privilege = text(childNs(fault, 'privilegeId')).trim();
  return privilege ? { privilege, object: moRefOf(childNs(fault, 'object')) } : undefined;
}

/** "privilege VirtualMachine.State.CreateSnapshot on VirtualMachine web01 (vm-42)". */
export function describeMissing(m: MissingPrivilege, objectName?: string): string {
  if (!m.object) return `privilege ${m.privilege}`;
  const name = objectName && objectName !== m.object.value ? `${objectName} (${m.object.value})` : m.object.value;
  return `privilege ${m.privilege} on ${m.object.type} ${name}`;
}
