/**
 * Networks a NIC can be connected to, and the backing a NIC needs for each kind:
 * standard port groups (Network) by name, distributed port groups by their key and
 * their switch's uuid. A stored NIC names its network by name (standard) or by port
 * group key (distributed); both are looked up in the target datacenter.
 */
import { retrieveInContainer, retrieveObjects } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { type MoRef, Typed, moRefOf, text } from './xml.js';

export type NetworkInfo =
  | { readonly kind: 'standard'; readonly ref: MoRef; readonly name: string }
  | { readonly kind: 'distributed'; readonly ref: MoRef; readonly name: string; readonly portgroupKey: string; readonly switchUuid: string };

/** Every standard and distributed port group under `networkFolder` (a datacenter's). */
export async function listNetworks(session: VsphereSession, networkFolder: MoRef): Promise<NetworkInfo[]> {
  const out: NetworkInfo[] = [];
  const seen = new Set<string>();
  const portgroups = await retrieveInContainer(session, networkFolder, 'DistributedVirtualPortgroup', ['name', 'key', 'config.distributedVirtualSwitch']);
  const switches = new Map<string, string>();
  const switchRefs = portgroups.map((p) => moRefOf(p.props.get('config.distributedVirtualSwitch'))).filter((r): r is MoRef => r !== undefined);
  if (switchRefs.length > 0) {
    // The switch may be a VmwareDistributedVirtualSwitch; the property collector wants one type per call.
    const byType = new Map<string, MoRef[]>();
    for (const r of switchRefs) byType.set(r.type, [...(byType.get(r.type) ?? []), r]);
    for (const refs of byType.values()) {
      for (const s of await retrieveObjects(session, refs, ['uuid'])) switches.set(s.obj.value, text(s.props.get('uuid')));
    }
  }
  for (const p of portgroups) {
    const sw = moRefOf(p.props.get('config.distributedVirtualSwitch'));
    const uuid = sw ? switches.get(sw.value) : undefined;
    seen.add(p.obj.value);
    if (!uuid) continue; // an uplink port group without a switch we can read: not a place for a NIC
    out.push({ kind: 'distributed', ref: p.obj, name: text(p.props.get('name')), portgroupKey: text(p.props.get('key')) || p.obj.value, switchUuid: uuid });
  }
  // A ContainerView of "Network" includes its subtypes on vCenter: skip those already listed.
  for (const n of await retrieveInContainer(session, networkFolder, 'Network', ['name'])) {
    if (seen.has(n.obj.value) || n.obj.type !== 'Network') continue;
    out.push({ kind: 'standard', ref: n.obj, name: text(n.props.get('name')) });
  }
  return out;
}

/** The NIC backing that connects to `n`. */
export function nicBacking(n: NetworkInfo): Typed {
  if (n.kind === 'distributed') {
    return new Typed('VirtualEthernetCardDistributedVirtualPortBackingInfo', { port: { switchUuid: n.switchUuid, portgroupKey: n.portgroupKey } });
  }
  return new Typed('VirtualEthernetCardNetworkBackingInfo', { deviceName: n.name, network: n.ref });
}
