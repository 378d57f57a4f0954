/** The NICs of a restored VM on the target's networks. */
import { InputError, NotFoundError } from '../../errors.js';
import { type StoredNic, ethernetCards } from '../../vsphere/create-vm.js';
import { type NetworkInfo, listNetworks, nicBacking } from '../../vsphere/network.js';
import type { Placement } from '../../vsphere/placement.js';
import type { Typed } from '../../vsphere/xml.js';
import type { RestoreContext, VmRestoreRequest } from './restore-vm-context.js';

/** Each NIC's backing: mapped by --network, else on the network of the same name (or port group key). */
export async function mapNetworks(ctx: Pick<RestoreContext, 'gen' | 'machine'> & { readonly req: Pick<VmRestoreRequest, 'session' | 'network'> },
  place: Placement): Promise<{ nic: StoredNic; backing: Typed; network: string }[]> {
  const { req, gen } = ctx;
  const nics = ethernetCards(ctx.machine.config);
  const nets = await listNetworks(req.session, place.datacenter.networkFolder);
  const have = () => nets.map((n) => n.name).sort().join(', ') || 'none';
  const mapping = new Map(Object.entries(req.network ?? {}));
  // A distributed port group's NIC names its key; the user may name the port group instead.
  const sourceName = (nic: StoredNic) => nic.distributed ? nets.find((n) => n.kind === 'distributed' && n.portgroupKey === nic.network)?.name : nic.network;
  for (const old of mapping.keys()) {
    if (!nics.some((nic) => nic.network === old || sourceName(nic) === old)) {
      const on = [...new Set(nics.map((nic) => sourceName(nic) ?? nic.network))].join(', ') || 'no network';
      throw new InputError(`--network maps ${JSON.stringify(old)}, but no NIC of ${gen} is on it (its NICs are on: ${on})`);
    }
  }
  return nics.map((nic) => {
    const name = sourceName(nic);
    const mapped = mapping.get(nic.network) ?? (name !== undefined ? mapping.get(name) : undefined);
    let net: NetworkInfo | undefined;
    if (mapped !== undefined) {
      net = nets.find((n) => n.name === mapped);
      if (!net) throw new NotFoundError(`network ${JSON.stringify(mapped)} (--network ${name ?? nic.network}=${mapped}) does not exist in datacenter ${place.datacenter.name} (it has: ${have()})`);
    } else {
      net = nic.distributed ? nets.find((n) => n.kind === 'distributed' && n.portgroupKey === nic.network) : nets.find((n) => n.name === nic.network);
      if (!net) {
        throw new NotFoundError(`network ${JSON.stringify(nic.network)} of ${nic.label} does not exist in datacenter ${place.datacenter.name} (it has: ${have()}): map it with --network ${JSON.stringify(`${nic.network}=NEW`)}`);
      }
    }
    return { nic, backing: nicBacking(net), network: net.name };
  });
}
