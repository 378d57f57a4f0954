/**
 * Reading properties through the PropertyCollector: RetrievePropertiesEx, then
 * ContinueRetrievePropertiesEx while the server hands out a token (results come in pages).
 * A property the server could not read comes back in an object's `missingSet`: that
 * fails the read, as a value vmbkp asked for and did not get must never pass for unset.
 */
import { VsphereFaultError, missingPrivilegeOf } from './errors.js';
import type { VsphereSession } from './session.js';
import { type Fields, type MoRef, Typed, type XmlNode, child, children, moRefOf, textAt, xsiType } from './xml.js';

export interface ObjectContent {
  readonly obj: MoRef;
  /** Property path → value element (absent when unset). */
  readonly props: ReadonlyMap<string, XmlNode>;
}

async function collect(session: VsphereSession, specSet: Fields): Promise<ObjectContent[]> {
  const pc = session.content.propertyCollector;
  const out: ObjectContent[] = [];
  let res = await session.call('RetrievePropertiesEx', pc, { specSet, options: { maxObjects: 500 } });
  for (;;) {
    const rv = child(res, 'returnval');
    const token = textAt(rv, 'token');
    for (const o of children(rv, 'objects')) {
      const missing = child(o, 'missingSet');
      if (missing !== undefined) {
        // The pages left are of no use now: let the server drop them.
        if (token) await session.call('CancelRetrievePropertiesEx', pc, { token }).catch(() => {});
        throw await missingError(session, moRefOf(child(o, 'obj')), missing);
      }
      const props = new Map<string, XmlNode>();
      for (const p of children(o, 'propSet')) {
        const val = child(p, 'val');
        if (val !== undefined) props.set(textAt(p, 'name') ?? '', val);
      }
      out.push({ obj: moRefOf(child(o, 'obj'))!, props });
    }
    if (!token) return out;
    res = await session.call('ContinueRetrievePropertiesEx', pc, { token });
  }
}

/** The error for a property in `missingSet`: a refusal naming the privilege, or the fault the server gave. */
async function missingError(session: VsphereSession, obj: MoRef | undefined, missing: XmlNode): Promise<VsphereFaultError> {
  const path = textAt(missing, 'path') ?? '?';
  const fault = child(missing, 'fault');
  const type = xsiType(child(fault, 'fault')) ?? 'SystemError';
  const what = `read property ${path} of ${obj ? `${obj.type} ${obj.value}` : 'an object'}`;
  const privilege = type === 'NoPermission' || type === 'NotAuthenticated' ? missingPrivilegeOf(child(fault, 'fault')) : undefined;
  if (privilege) return session.refusal(what, privilege);
  const message = textAt(fault, 'localizedMessage');
  return new VsphereFaultError(`could not ${what} on ${session.host}: vCenter left it out (missingSet: ${type}${message ? `: ${message}` : ''})`, type);
}

/** Properties `paths` of the given objects (all of one type). */
export async function retrieveObjects(session: VsphereSession, objs: readonly MoRef[], paths: readonly string[]): Promise<ObjectContent[]> {
  if (objs.length === 0) return [];
  return collect(session, {
    propSet: { type: objs[0]!.type, pathSet: paths },
    objectSet: objs.map((obj) => ({ obj, skip: false })),
  });
}

/** The properties of one object; an empty map entry means the property is unset. */
export async function retrieveOne(session: VsphereSession, obj: MoRef, paths: readonly string[]): Promise<ReadonlyMap<string, XmlNode>> {
  const [found] = await retrieveObjects(session, [obj], paths);
  return found?.props ?? new Map();
}

/** Properties of every object of `type` under `container` (recursively), through a ContainerView. */
export async function retrieveInContainer(session: VsphereSession, container: MoRef, type: string, paths: readonly string[]): Promise<ObjectContent[]> {
  const res = await session.call('CreateContainerView', session.content.viewManager, { container, type: [type], recursive: true });
  const view = moRefOf(child(res, 'returnval'))!;
  try {
    return await collect(session, {
      propSet: { type, pathSet: paths },
      objectSet: {
        obj: view,
        skip: true,
        selectSet: new Typed('TraversalSpec', { name: 'view', type: 'ContainerView', path: 'view', skip: false }),
      },
    });
  } finally {
    await session.call('DestroyView', view).catch(() => {});
  }
}
