/**
 * A new VM from a stored configuration (`config` as vCenter returned it at backup
 * time): the VirtualMachineConfigSpec that recreates its hardware — CPUs, memory,
 * firmware, guest OS, storage controllers, disks (same controller, bus and unit, same
 * capacity and provisioning, created empty) and NICs (on the networks the caller
 * resolved) — and CreateVM_Task. Identity (BIOS and instance UUID, MAC addresses) is
 * new unless kept on purpose, so a restored copy can run beside the original.
 *
 * Not recreated: CD-ROMs, floppies, serial and parallel ports, USB and PCI passthrough
 * devices, advanced settings (extraConfig), resource allocations, vApp options.
 * Fields are written in the schema's order: vSphere checks the order of a sequence.
 */
import { InputError } from '../errors.js';
import { VsphereFaultError } from './errors.js';
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import { type Fields, type MoRef, Typed, TypedText, type Value, type XmlNode, at, boolAt, children, moRefOf, numberAt, textAt, xsiType } from './xml.js';

const SCSI = new Set(['VirtualLsiLogicController', 'VirtualLsiLogicSASController', 'ParaVirtualSCSIController', 'VirtualBusLogicController']);
const OTHER_STORAGE = new Set(['VirtualAHCIController', 'VirtualNVMEController']);
const IDE = 'VirtualIDEController';
export const NIC_TYPES = new Set(['VirtualVmxnet3', 'VirtualVmxnet2', 'VirtualVmxnet', 'VirtualE1000', 'VirtualE1000e', 'VirtualPCNet32', 'VirtualVmxnet3Vrdma']);
/** Every new VM has these, keyed 200 + bus: disks on IDE attach to them. */
const IDE_KEY_BASE = 200;

export interface StoredController {
  readonly key: number;
  readonly type: string;
  readonly busNumber: number;
  readonly sharedBus: string | undefined;
}

export interface StoredNic {
  readonly key: number;
  readonly type: string;
  readonly label: string;
  /** The network's name (standard port group), or the port group key (distributed). */
  readonly network: string;
  readonly distributed: boolean;
  readonly macAddress: string | undefined;
  readonly startConnected: boolean;
  readonly allowGuestControl: boolean;
  readonly wakeOnLan: boolean | undefined;
}

export interface NewDisk {
  readonly key: number;
  readonly controllerKey: number;
  readonly unitNumber: number;
  readonly capacity: number;
  readonly thinProvisioned: boolean;
  readonly diskMode: string;
}

const devices = (config: XmlNode | undefined): XmlNode[] => children(at(config, 'hardware'), 'device');

/** Storage controllers of a stored configuration, in device order. */
export function storageControllers(config: XmlNode | undefined): StoredController[] {
  return devices(config).flatMap((d) => {
    const type = xsiType(d) ?? '';
    if (!SCSI.has(type) && !OTHER_STORAGE.has(type) && type !== IDE) return [];
    return [{ key: numberAt(d, 'key') ?? 0, type, busNumber: numberAt(d, 'busNumber') ?? 0, sharedBus: textAt(d, 'sharedBus') }];
  });
}

/** How vSphere names a storage controller's bus in a disk's position ("scsi0:1"): by its type. */
export function busKind(type: string): 'scsi' | 'sata' | 'nvme' | 'ide' | undefined {
  if (SCSI.has(type)) return 'scsi';
  if (type === 'VirtualAHCIController') return 'sata';
  if (type === 'VirtualNVMEController') return 'nvme';
  return type === IDE ? 'ide' : undefined;
}

/** The network adapters of a stored configuration, in device order. */
export function ethernetCards(config: XmlNode | undefined): StoredNic[] {
  return devices(config).flatMap((d) => {
    const type = xsiType(d) ?? '';
    if (!NIC_TYPES.has(type)) return [];
    const backing = at(d, 'backing');
    const distributed = xsiType(backing) === 'VirtualEthernetCardDistributedVirtualPortBackingInfo';
    return [{
      key: numberAt(d, 'key') ?? 0,
      type,
      label: textAt(d, 'deviceInfo.label') ?? type,
      network: (distributed ? textAt(backing, 'port.portgroupKey') : textAt(backing, 'deviceName') ?? textAt(backing, 'opaqueNetworkId')) ?? '',
      distributed,
      macAddress: textAt(d, 'macAddress') || undefined,
      startConnected: boolAt(d, 'connectable.startConnected') ?? true,
      allowGuestControl: boolAt(d, 'connectable.allowGuestControl') ?? true,
      wakeOnLan: boolAt(d, 'wakeOnLanEnabled'),
    }];
  });
}

/** Device types of a stored configuration that a restore does not recreate, for a warning. */
export function notRecreated(config: XmlNode | undefined): string[] {
  const handled = new Set([...SCSI, ...OTHER_STORAGE, IDE, ...NIC_TYPES, 'VirtualDisk', 'VirtualPCIController', 'VirtualPS2Controller',
    'VirtualSIOController', 'VirtualKeyboard', 'VirtualPointingDevice', 'VirtualMachineVideoCard', 'VirtualMachineVMCIDevice', 'VirtualMachineVMIROM']);
  return devices(config).map((d) => xsiType(d) ?? '').filter((t) => t !== '' && !handled.has(t));
}

/** A stored disk's thick-provisioning flavour, from its backing in the stored configuration. */
export function eagerlyScrubbed(config: XmlNode | undefined, key: number): boolean {
  const d = devices(config).find((x) => xsiType(x) === 'VirtualDisk' && numberAt(x, 'key') === key);
  return boolAt(d, 'backing.eagerlyScrub') === true;
}

export interface NewVmSpec {
  readonly name: string;
  /** The stored VirtualMachineConfigInfo. */
  readonly config: XmlNode;
  readonly datastore: string;
  readonly disks: readonly NewDisk[];
  /** NICs with the backing (network) each one gets, in the order they are added. */
  readonly nics: readonly { readonly nic: StoredNic; readonly backing: Typed }[];
  /** Keep the BIOS and instance UUIDs and the MAC addresses. */
  readonly keepIdentity: boolean;
  /** Advanced settings to set (extraConfig), e.g. vmbkp's incomplete-restore marker. */
  readonly extraConfig?: Readonly<Record<string, string>>;
}

function optional<T extends Value>(v: T | undefined): T | undefined {
  return v === undefined || v === '' ? undefined : v;
}

export function vmConfigSpec(s: NewVmSpec): Fields {
  const c = s.config;
  const hw = at(c, 'hardware');
  const deviceChange: Fields[] = [];

  // Controllers: temporary negative keys; disks refer to them until vCenter assigns real ones.
  const controllerKeys = new Map<number, number>();
  let temp = -100;
  for (const ctl of storageControllers(c)) {
    if (ctl.type === IDE) {
      controllerKeys.set(ctl.key, IDE_KEY_BASE + ctl.busNumber);
      continue;
    }
    const key = temp--;
    controllerKeys.set(ctl.key, key);
    const fields: Record<string, Value> = { key, busNumber: ctl.busNumber };
    if (SCSI.has(ctl.type)) fields['sharedBus'] = ctl.sharedBus ?? 'noSharing';
    deviceChange.push({ operation: 'add', device: new Typed(ctl.type, fields) });
  }

  temp = -2000;
  for (const d of s.disks) {
    const controllerKey = controllerKeys.get(d.controllerKey);
    if (controllerKey === undefined) throw new InputError(`disk ${d.key} of the stored configuration is on controller ${d.controllerKey}, which is not a storage controller vmbkp can recreate`);
    deviceChange.push({
      operation: 'add',
      fileOperation: 'create',
      device: new Typed('VirtualDisk', {
        key: temp--,
        // An empty path: vCenter names the files after the VM in its directory (NAME.vmdk, NAME_1.vmdk, …).
        backing: new Typed('VirtualDiskFlatVer2BackingInfo', {
          fileName: `[${s.datastore}]`,
          diskMode: d.diskMode.startsWith('independent') ? d.diskMode : 'persistent',
          thinProvisioned: d.thinProvisioned,
          eagerlyScrub: d.thinProvisioned ? undefined : eagerlyScrubbed(c, d.key),
        }),
        controllerKey,
        unitNumber: d.unitNumber,
        capacityInKB: Math.ceil(d.capacity / 1024),
        capacityInBytes: d.capacity,
      }),
    });
  }

  temp = -4000;
  for (const { nic, backing } of s.nics) {
    deviceChange.push({
      operation: 'add',
      device: new Typed(nic.type, {
        key: temp--,
        backing,
        connectable: { startConnected: nic.startConnected, allowGuestControl: nic.allowGuestControl, connected: false },
        // A kept MAC must be "manual": vCenter replaces a generated one.
        addressType: s.keepIdentity && nic.macAddress ? 'manual' : 'generated',
        macAddress: s.keepIdentity ? nic.macAddress : undefined,
        wakeOnLanEnabled: nic.wakeOnLan,
      }),
    });
  }

  return {
    name: s.name,
    version: optional(textAt(c, 'version')),
    uuid: s.keepIdentity ? optional(textAt(c, 'uuid')) : undefined,
    instanceUuid: s.keepIdentity ? optional(textAt(c, 'instanceUuid')) : undefined,
    guestId: optional(textAt(c, 'guestId')),
    annotation: optional(textAt(c, 'annotation')),
    // Only the datastore: vCenter makes the VM's directory, named after the VM.
    files: { vmPathName: `[${s.datastore}]` },
    numCPUs: numberAt(hw, 'numCPU'),
    numCoresPerSocket: numberAt(hw, 'numCoresPerSocket'),
    memoryMB: numberAt(hw, 'memoryMB'),
    memoryHotAddEnabled: boolAt(c, 'memoryHotAddEnabled'),
    cpuHotAddEnabled: boolAt(c, 'cpuHotAddEnabled'),
    cpuHotRemoveEnabled: boolAt(c, 'cpuHotRemoveEnabled'),
    deviceChange,
    // After deviceChange and before changeTrackingEnabled, as the schema orders them.
    extraConfig: s.extraConfig ? Object.entries(s.extraConfig).map(([key, value]) => ({ key, value: new TypedText('xsd:string', value) })) : undefined,
    changeTrackingEnabled: boolAt(c, 'changeTrackingEnabled'),
    firmware: optional(textAt(c, 'firmware')),
  };
}

export interface CreateVmPlace {
  readonly folder: MoRef;
  readonly pool: MoRef;
  readonly host: MoRef | undefined;
}

/** CreateVM_Task; returns the new VM. */
export async function createVm(session: VsphereSession, place: CreateVmPlace, spec: Fields, what: string): Promise<MoRef> {
  const res = await session.call('CreateVM_Task', place.folder, { config: spec, pool: place.pool, host: place.host });
  const result = await waitForTask(session, taskOf(res), { what });
  const ref = moRefOf(result);
  if (!ref) throw new VsphereFaultError(`${what}: the task returned no VM`, 'InvalidResponse');
  return ref;
}
