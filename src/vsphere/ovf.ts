/**
 * An OVF descriptor of a VM without its disks, made from the VM's configuration: the
 * hardware an administrator (or another tool) needs to recreate the VM — CPUs, memory,
 * controllers, NICs and their networks. Disks live in the repository, not in the OVF.
 */
import { type XmlNode, at, children, escapeXml, numberAt, textAt, xsiType } from './xml.js';

const CONTROLLERS: Record<string, { type: number; subtype: string }> = {
  VirtualLsiLogicController: { type: 6, subtype: 'lsilogic' },
  VirtualLsiLogicSASController: { type: 6, subtype: 'lsilogicsas' },
  ParaVirtualSCSIController: { type: 6, subtype: 'VirtualSCSI' },
  VirtualBusLogicController: { type: 6, subtype: 'buslogic' },
  VirtualIDEController: { type: 5, subtype: '' },
  VirtualAHCIController: { type: 20, subtype: 'vmware.sata.ahci' },
  VirtualNVMEController: { type: 20, subtype: 'vmware.nvme.controller' },
};
const NICS: Record<string, string> = {
  VirtualVmxnet3: 'VmxNet3', VirtualE1000: 'E1000', VirtualE1000e: 'E1000e', VirtualVmxnet2: 'VmxNet2', VirtualPCNet32: 'PCNet32',
};

/** rasd elements must appear in alphabetical order (the CIM schema's sequence). */
function item(fields: Record<string, string | number | undefined>): string {
  const inner = Object.keys(fields).sort()
    .filter((k) => fields[k] !== undefined && fields[k] !== '')
    .map((k) => `<rasd:${k}>${escapeXml(String(fields[k]))}</rasd:${k}>`).join('');
  return `      <Item>${inner}</Item>`;
}

export function ovfDescriptor(config: XmlNode | undefined): string {
  const name = textAt(config, 'name') ?? 'vm';
  const guestId = textAt(config, 'guestId') ?? 'otherGuest';
  const version = textAt(config, 'version') ?? 'vmx-13';
  const hw = at(config, 'hardware');
  const cpus = numberAt(hw, 'numCPU') ?? 1;
  const memoryMB = numberAt(hw, 'memoryMB') ?? 1024;
  const items: string[] = [
    item({ AllocationUnits: 'hertz * 10^6', Description: 'Number of Virtual CPUs', ElementName: `${cpus} virtual CPU(s)`, InstanceID: 1, ResourceType: 3, VirtualQuantity: cpus }),
    item({ AllocationUnits: 'byte * 2^20', Description: 'Memory Size', ElementName: `${memoryMB}MB of memory`, InstanceID: 2, ResourceType: 4, VirtualQuantity: memoryMB }),
  ];
  const networks = new Set<string>();
  let instance = 3;
  for (const d of children(hw, 'device')) {
    const type = xsiType(d) ?? '';
    const label = textAt(d, 'deviceInfo.label') ?? type;
    const controller = CONTROLLERS[type];
    if (controller) {
      items.push(item({ Address: numberAt(d, 'busNumber'), Description: label, ElementName: label, InstanceID: instance++,
        ResourceSubType: controller.subtype, ResourceType: controller.type }));
      continue;
    }
    const nic = NICS[type];
    if (nic) {
      const network = textAt(d, 'backing.deviceName') ?? textAt(d, 'deviceInfo.summary') ?? 'VM Network';
      networks.add(network);
      items.push(item({ Address: textAt(d, 'macAddress'), AddressOnParent: numberAt(d, 'unitNumber'), AutomaticAllocation: 'true',
        Connection: network, Description: `${nic} ethernet adapter on "${network}"`, ElementName: label, InstanceID: instance++,
        ResourceSubType: nic, ResourceType: 10 }));
    }
  }
  const netSection = [...networks].map((n) => `    <Network ovf:name="${escapeXml(n)}"><Description>The ${escapeXml(n)} network</Description></Network>`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
      + ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"'
      + ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"'
      + ' xmlns:vmw="http://www.vmware.com/schema/ovf">',
    '  <References/>',
    '  <NetworkSection>',
    '    <Info>The networks the VM is connected to</Info>',
    ...netSection,
    '  </NetworkSection>',
    `  <VirtualSystem ovf:id="${escapeXml(name)}">`,
    '    <Info>A virtual machine; its disks are in the vmbkp repository</Info>',
    `    <Name>${escapeXml(name)}</Name>`,
    `    <OperatingSystemSection ovf:id="1" vmw:osType="${escapeXml(guestId)}"><Info>The guest operating system</Info></OperatingSystemSection>`,
    '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    `      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>${escapeXml(name)}</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>${escapeXml(version)}</vssd:VirtualSystemType></System>`,
    ...items,
    '    </VirtualHardwareSection>',
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}
