/**
 * AuthorizationManager.DisableMethods / EnableMethods, of vSphere's internal API (namespace
 * urn:internalvim25, as govmomi's object/authorization_manager_internal.go calls them):
 * vCenter refuses a disabled method with the MethodDisabled fault, keeps who disabled it
 * (`sourceId`), and lists the disabled methods in the entity's `disabledMethod`.
 */
import { VsphereFaultError } from './errors.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { type MoRef, type XmlNode, text } from './xml.js';

const INTERNAL = 'urn:internalvim25';

function authorizationManager(session: VsphereSession): MoRef {
  const m = session.content.authorizationManager;
  if (!m) throw new VsphereFaultError(`${session.host} has no AuthorizationManager to disable methods with`, 'NotSupported');
  return m;
}

export async function disableMethods(session: VsphereSession, entity: MoRef, methods: readonly string[], source: string, reason: string): Promise<void> {
  await session.call('DisableMethods', authorizationManager(session), {
    entity, method: methods.map((method) => ({ method, reasonId: reason })), sourceId: source,
  }, INTERNAL);
}

/** Enables what `source` disabled; methods other sources disabled stay disabled. */
export async function enableMethods(session: VsphereSession, entity: MoRef, methods: readonly string[], source: string): Promise<void> {
  await session.call('EnableMethods', authorizationManager(session), { entity, method: [...methods], sourceId: source }, INTERNAL);
}

/** The entity's `disabledMethod`: the names of its disabled methods. */
export async function disabledMethodsOf(session: VsphereSession, entity: MoRef): Promise<string[]> {
  const prop: XmlNode | undefined = (await retrieveOne(session, entity, ['disabledMethod'])).get('disabledMethod');
  return methodNames(prop);
}

export function methodNames(prop: XmlNode | XmlNode[] | undefined): string[] {
  if (prop === undefined) return [];
  const list = Array.isArray(prop) ? prop : [prop];
  return list.flatMap((n) => {
    if (typeof n === 'string') return [n.trim()];
    const s = n['string'];
    const items = s === undefined ? [text(n)] : (Array.isArray(s) ? s : [s]).map((x) => text(x));
    return items.map((x) => x.trim());
  }).filter((x) => x !== '');
}
