/**
 * A summary of a VM backup's machine configuration for `vmbkp show`, read leniently from
 * the stored config tree (the snapshot's VirtualMachineConfigInfo, kept as XML-as-JSON): a
 * field the tree lacks is left out, never an error, because show must work on every
 * generation, old or odd.
 */
import { type XmlNode, at, children, numberAt, textAt, xsiType } from '../../vsphere/xml.js';

/** Storage controllers by their vSphere type, and the bus name vSphere shows ("scsi0:1"). */
const BUSES: Record<string, string> = {
  VirtualLsiLogicController: 'scsi', VirtualLsiLogicSASController: 'scsi', ParaVirtualSCSIController: 'scsi', VirtualBusLogicController: 'scsi',
  VirtualAHCIController: 'sata', VirtualSATAController: 'sata', VirtualNVMEController: 'nvme', VirtualIDEController: 'ide',
};
const NICS = new Set(['VirtualVmxnet3', 'VirtualVmxnet3Vrdma', 'VirtualE1000', 'VirtualE1000e', 'VirtualVmxnet2', 'VirtualVmxnet', 'VirtualPCNet32', 'VirtualSriovEthernetCard']);

export interface VmConfigSummary {
  readonly name?: string;
  readonly guestId?: string;
  readonly guestFullName?: string;
  readonly version?: string;
  readonly firmware?: string;
  readonly cpus?: number;
  readonly coresPerSocket?: number;
  readonly memoryMB?: number;
  readonly controllers: { readonly key: number; readonly type: string; readonly busNumber?: number; readonly label?: string }[];
  readonly nics: { readonly key: number; readonly type: string; readonly label?: string; readonly network?: string; readonly macAddress?: string }[];
  readonly disks: {
    readonly key: number; readonly label?: string; readonly controllerKey?: number; readonly unitNumber?: number;
    /** Where vSphere shows it: "scsi0:1" (controller bus and unit), when the controller is known. */
    readonly position?: string;
    readonly capacity?: number; readonly fileName?: string;
  }[];
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as T;
}

export function vmConfigSummary(config: XmlNode | undefined): VmConfigSummary {
  const hw = at(config, 'hardware');
  const devices = children(hw, 'device');
  const controllers: VmConfigSummary['controllers'][number][] = [];
  const nics: VmConfigSummary['nics'][number][] = [];
  const disks: VmConfigSummary['disks'][number][] = [];
  for (const d of devices) {
    const type = xsiType(d) ?? '';
    const key = numberAt(d, 'key');
    if (key === undefined) continue;
    const label = textAt(d, 'deviceInfo.label');
    if (BUSES[type]) {
      controllers.push(defined({ key, type, busNumber: numberAt(d, 'busNumber'), label }));
    } else if (NICS.has(type)) {
      nics.push(defined({
        key, type, label,
        network: textAt(d, 'backing.deviceName') ?? textAt(d, 'backing.port.portgroupKey') ?? textAt(d, 'backing.opaqueNetworkId'),
        macAddress: textAt(d, 'macAddress'),
      }));
    } else if (type === 'VirtualDisk') {
      disks.push(defined({
        key, label, controllerKey: numberAt(d, 'controllerKey'), unitNumber: numberAt(d, 'unitNumber'),
        capacity: numberAt(d, 'capacityInBytes') ?? ((kb) => (kb === undefined ? undefined : kb * 1024))(numberAt(d, 'capacityInKB')),
        fileName: textAt(d, 'backing.fileName'),
      }));
    }
  }
  for (const [i, disk] of disks.entries()) {
    const c = controllers.find((x) => x.key === disk.controllerKey);
    if (c && c.busNumber !== undefined && disk.unitNumber !== undefined) disks[i] = { ...disk, position: `${BUSES[c.type]}${c.busNumber}:${disk.unitNumber}` };
  }
  return defined({
    name: textAt(config, 'name'), guestId: textAt(config, 'guestId'), guestFullName: textAt(config, 'guestFullName'),
    version: textAt(config, 'version'), firmware: textAt(config, 'firmware'),
    cpus: numberAt(hw, 'numCPU'), coresPerSocket: numberAt(hw, 'numCoresPerSocket'), memoryMB: numberAt(hw, 'memoryMB'),
    controllers, nics, disks,
  });
}
