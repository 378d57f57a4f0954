/**
 * Unit tests of the VirtualMachineConfigSpec a VM restore builds from a stored
 * configuration: controllers with temporary keys (IDE reused), disks on the same bus and
 * unit, NIC backings for standard and distributed port groups, identity kept or new,
 * devices not recreated, and the schema order vSphere checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ethernetCards, notRecreated, storageControllers, vmConfigSpec } from '../src/vsphere/create-vm.js';
import { nicBacking } from '../src/vsphere/network.js';
import { MoRef, type Fields, type Typed, type XmlNode, parseXml, soapEnvelope } from '../src/vsphere/xml.js';

/** A stored configuration as backup-vm.ts keeps it: vCenter's XML as a tree. */
const CONFIG = (parseXml(`<config xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="VirtualMachineConfigInfo">
  <name>web01</name><version>vmx-19</version><uuid>4210aaaa-0000-0000-0000-000000000001</uuid><instanceUuid>5010bbbb-0000-0000-0000-000000000002</instanceUuid>
  <guestId>ubuntu64Guest</guestId><files><vmPathName>[ds1] web01/web01.vmx</vmPathName></files><firmware>efi</firmware><changeTrackingEnabled>true</changeTrackingEnabled>
  <hardware><numCPU>4</numCPU><numCoresPerSocket>2</numCoresPerSocket><memoryMB>8192</memoryMB>
    <device xsi:type="VirtualIDEController"><key>200</key><busNumber>0</busNumber></device>
    <device xsi:type="VirtualIDEController"><key>201</key><busNumber>1</busNumber></device>
    <device xsi:type="ParaVirtualSCSIController"><key>1000</key><busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device>
    <device xsi:type="VirtualLsiLogicSASController"><key>1001</key><busNumber>1</busNumber><sharedBus>noSharing</sharedBus></device>
    <device xsi:type="VirtualCdrom"><key>3002</key><controllerKey>201</controllerKey><unitNumber>1</unitNumber></device>
    <device xsi:type="VirtualDisk"><key>2000</key><controllerKey>1000</controllerKey><unitNumber>0</unitNumber><capacityInKB>16384</capacityInKB>
      <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] web01/web01.vmdk</fileName><diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing></device>
    <device xsi:type="VirtualDisk"><key>2019</key><controllerKey>1001</controllerKey><unitNumber>3</unitNumber><capacityInKB>32768</capacityInKB>
      <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] web01/web01_1.vmdk</fileName><diskMode>persistent</diskMode><thinProvisioned>false</thinProvisioned><eagerlyScrub>true</eagerlyScrub></backing></device>
    <device xsi:type="VirtualDisk"><key>3000</key><controllerKey>201</controllerKey><unitNumber>0</unitNumber><capacityInKB>1024</capacityInKB>
      <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] web01/web01_2.vmdk</fileName><diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing></device>
    <device xsi:type="VirtualVmxnet3"><key>4000</key><deviceInfo><label>Network adapter 1</label></deviceInfo>
      <backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName></backing>
      <connectable><startConnected>true</startConnected><allowGuestControl>true</allowGuestControl><connected>true</connected></connectable>
      <addressType>assigned</addressType><macAddress>00:50:56:aa:bb:01</macAddress></device>
    <device xsi:type="VirtualE1000e"><key>4001</key><deviceInfo><label>Network adapter 2</label></deviceInfo>
      <backing xsi:type="VirtualEthernetCardDistributedVirtualPortBackingInfo"><port><switchUuid>50 1a</switchUuid><portgroupKey>dvportgroup-31</portgroupKey></port></backing>
      <connectable><startConnected>false</startConnected><allowGuestControl>false</allowGuestControl><connected>false</connected></connectable>
      <addressType>assigned</addressType><macAddress>00:50:56:aa:bb:02</macAddress></device>
  </hardware></config>`) as Record<string, XmlNode>)['config']!;

const DISKS = [
  { key: 2000, controllerKey: 1000, unitNumber: 0, capacity: 16 << 20, thinProvisioned: true, diskMode: 'persistent' },
  { key: 2019, controllerKey: 1001, unitNumber: 3, capacity: 32 << 20, thinProvisioned: false, diskMode: 'persistent' },
  { key: 3000, controllerKey: 201, unitNumber: 0, capacity: 1 << 20, thinProvisioned: true, diskMode: 'persistent' },
];

function spec(keepIdentity: boolean): Fields {
  const nics = ethernetCards(CONFIG).map((nic) => ({
    nic,
    backing: nic.distributed
      ? nicBacking({ kind: 'distributed', ref: new MoRef('DistributedVirtualPortgroup', 'dvportgroup-77'), name: 'prod', portgroupKey: 'dvportgroup-77', switchUuid: '50 2b' })
      : nicBacking({ kind: 'standard', ref: new MoRef('Network', 'network-9'), name: 'isolated' }),
  }));
  return vmConfigSpec({ name: 'web01-copy', config: CONFIG, datastore: 'ds2', disks: DISKS, nics, keepIdentity });
}

const devices = (s: Fields) => (s['deviceChange'] as Fields[]).map((c): Fields & { device: Typed } => ({ ...c, device: c['device'] as Typed }));

describe('VM restore: the config spec from a stored configuration', () => {
  it('reads controllers and NICs as stored', () => {
    assert.deepEqual(storageControllers(CONFIG).map((c) => `${c.type}:${c.busNumber}`),
      ['VirtualIDEController:0', 'VirtualIDEController:1', 'ParaVirtualSCSIController:0', 'VirtualLsiLogicSASController:1']);
    const nics = ethernetCards(CONFIG);
    assert.deepEqual(nics.map((n) => [n.type, n.network, n.distributed, n.startConnected]),
      [['VirtualVmxnet3', 'VM Network', false, true], ['VirtualE1000e', 'dvportgroup-31', true, false]]);
    assert.deepEqual(notRecreated(CONFIG), ['VirtualCdrom']);
  });

  it('adds the SCSI controllers with temporary keys, reuses the IDE ones, and puts each disk on its bus and unit', () => {
    const s = spec(false);
    const d = devices(s);
    const ctls = d.filter((c) => c.device.xsiType.endsWith('Controller'));
    assert.deepEqual(ctls.map((c) => [c.device.xsiType, c.device.fields['key'], c.device.fields['busNumber'], c.device.fields['sharedBus']]),
      [['ParaVirtualSCSIController', -100, 0, 'noSharing'], ['VirtualLsiLogicSASController', -101, 1, 'noSharing']]);
    const disks = d.filter((c) => c.device.xsiType === 'VirtualDisk');
    assert.deepEqual(disks.map((c) => [c['operation'], c['fileOperation'], c.device.fields['controllerKey'], c.device.fields['unitNumber'], c.device.fields['capacityInBytes'], c.device.fields['capacityInKB']]),
      [['add', 'create', -100, 0, 16 << 20, 16384], ['add', 'create', -101, 3, 32 << 20, 32768], ['add', 'create', 201, 0, 1 << 20, 1024]]);
    const backings = disks.map((c) => (c.device.fields['backing'] as Typed).fields);
    assert.deepEqual(backings.map((b) => [b['fileName'], b['thinProvisioned'], b['eagerlyScrub']]),
      [['[ds2]', true, undefined], ['[ds2]', false, true], ['[ds2]', true, undefined]]);
    assert.equal(s['numCPUs'], 4);
    assert.equal(s['numCoresPerSocket'], 2);
    assert.equal(s['memoryMB'], 8192);
    assert.equal(s['firmware'], 'efi');
    assert.equal(s['guestId'], 'ubuntu64Guest');
    assert.equal(s['version'], 'vmx-19');
    assert.equal(s['changeTrackingEnabled'], true);
    assert.deepEqual(s['files'], { vmPathName: '[ds2]' });
  });

  it('connects NICs to the mapped networks, disconnected, with new identity unless kept', () => {
    const fresh = devices(spec(false)).filter((c) => c.device.xsiType.startsWith('VirtualVmxnet') || c.device.xsiType.startsWith('VirtualE1000'));
    assert.deepEqual(fresh.map((c) => [c.device.xsiType, c.device.fields['addressType'], c.device.fields['macAddress']]),
      [['VirtualVmxnet3', 'generated', undefined], ['VirtualE1000e', 'generated', undefined]]);
    assert.deepEqual((fresh[0]!.device.fields['backing'] as Typed).fields, { deviceName: 'isolated', network: new MoRef('Network', 'network-9') });
    assert.equal((fresh[1]!.device.fields['backing'] as Typed).xsiType, 'VirtualEthernetCardDistributedVirtualPortBackingInfo');
    assert.deepEqual(fresh.map((c) => c.device.fields['connectable']), [
      { startConnected: true, allowGuestControl: true, connected: false },
      { startConnected: false, allowGuestControl: false, connected: false },
    ]);
    assert.equal(spec(false)['uuid'], undefined);

    const kept = spec(true);
    assert.equal(kept['uuid'], '4210aaaa-0000-0000-0000-000000000001');
    assert.equal(kept['instanceUuid'], '5010bbbb-0000-0000-0000-000000000002');
    assert.deepEqual(devices(kept).filter((c) => c.device.fields['macAddress']).map((c) => [c.device.fields['addressType'], c.device.fields['macAddress']]),
      [['manual', '00:50:56:aa:bb:01'], ['manual', '00:50:56:aa:bb:02']]);
  });

  it('writes the spec in schema order, with xsi:type on devices and backings', () => {
    const xml = soapEnvelope('CreateVM_Task', new MoRef('Folder', 'group-4'), { config: spec(true), pool: new MoRef('ResourcePool', 'resgroup-9'), host: undefined });
    const order = ['<name>', '<version>', '<uuid>', '<instanceUuid>', '<guestId>', '<files>', '<numCPUs>', '<numCoresPerSocket>', '<memoryMB>', '<deviceChange>', '<changeTrackingEnabled>', '<firmware>'];
    const at = order.map((t) => xml.indexOf(t));
    assert.ok(at.every((p) => p > 0), `all present: ${order.filter((_, i) => at[i]! < 0).join(' ')}`);
    assert.deepEqual([...at].sort((a, b) => a - b), at, 'VirtualMachineConfigSpec order');
    assert.ok(xml.indexOf('</config><pool type="ResourcePool">resgroup-9</pool>') > 0, 'config, then pool');
    assert.match(xml, /<deviceChange><operation>add<\/operation><fileOperation>create<\/fileOperation><device xsi:type="VirtualDisk"><key>-2000<\/key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>\[ds2\]<\/fileName><diskMode>persistent<\/diskMode><thinProvisioned>true<\/thinProvisioned><\/backing><controllerKey>-100<\/controllerKey><unitNumber>0<\/unitNumber><capacityInKB>16384<\/capacityInKB><capacityInBytes>16777216<\/capacityInBytes><\/device><\/deviceChange>/);
    assert.match(xml, /<device xsi:type="VirtualVmxnet3"><key>-4000<\/key><backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>isolated<\/deviceName><network type="Network">network-9<\/network><\/backing><connectable><startConnected>true<\/startConnected><allowGuestControl>true<\/allowGuestControl><connected>false<\/connected><\/connectable><addressType>manual<\/addressType><macAddress>00:50:56:aa:bb:01<\/macAddress><\/device>/);
  });
});
