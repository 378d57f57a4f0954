/** Unit tests of the vSphere client's pure parts: XML in and out, thumbprints, URLs, paths, CBT paging. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flatFileOf, parseDatastorePath } from '../src/vsphere/datastore.js';
import { sdkUrl, type VsphereSession } from '../src/vsphere/session.js';
import { normalizeThumbprint } from '../src/vsphere/tls.js';
import { queryChangedDiskAreas, unsnapshottable, type VirtualDiskInfo } from '../src/vsphere/vm.js';
import { MoRef, Typed, parseXml, soapEnvelope, textAt, xsiType, children, type XmlNode } from '../src/vsphere/xml.js';

describe('vSphere XML', () => {
  it('writes fields in the given order, escapes text, and types polymorphic values', () => {
    const xml = soapEnvelope('ReconfigVM_Task', new MoRef('VirtualMachine', 'vm-1'), {
      spec: { name: 'a<b&"c"', deviceChange: [{ operation: 'edit', device: new Typed('VirtualDisk', { key: 2000 }) }, { operation: 'add' }] },
    });
    assert.match(xml, /<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-1<\/_this><spec><name>a&lt;b&amp;&quot;c&quot;<\/name><deviceChange><operation>edit<\/operation><device xsi:type="VirtualDisk"><key>2000<\/key><\/device><\/deviceChange><deviceChange><operation>add<\/operation><\/deviceChange><\/spec><\/ReconfigVM_Task>/);
  });
  it('reads xsi:type whatever the namespace prefix, and one-element arrays as arrays', () => {
    const doc = parseXml('<r xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance"><device XMLSchema-instance:type="VirtualDisk"><key>1</key></device><name>x &amp; y</name></r>');
    const r = doc['r'] as XmlNode;
    assert.equal(xsiType(children(r, 'device')[0]), 'VirtualDisk');
    assert.equal(children(r, 'device').length, 1);
    assert.equal(textAt(r, 'name'), 'x & y');
  });
});

describe('vSphere connection inputs', () => {
  it('normalizes SHA-1 and SHA-256 thumbprints and refuses others', () => {
    assert.equal(normalizeThumbprint('aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd'), 'AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD');
    assert.equal(normalizeThumbprint('ab'.repeat(32)).length, 95);
    assert.throws(() => normalizeThumbprint('abc'), /thumbprint "abc" is invalid/);
  });
  it('makes SDK URLs from what users type', () => {
    assert.equal(sdkUrl('vc.example.com').href, 'https://vc.example.com/sdk');
    assert.equal(sdkUrl('https://vc:8443').href, 'https://vc:8443/sdk');
    assert.throws(() => sdkUrl('http://vc'), /must use https/);
    assert.throws(() => sdkUrl('https://u:p@vc'), /must not carry credentials/);
  });
  it('parses datastore paths and names flat files', () => {
    assert.deepEqual(parseDatastorePath('[ds 1] web01/web01_1.vmdk'), { datastore: 'ds 1', path: 'web01/web01_1.vmdk' });
    assert.equal(flatFileOf('web01/web01_1.vmdk'), 'web01/web01_1-flat.vmdk');
    assert.throws(() => parseDatastorePath('web01.vmdk'), /not of the form/);
  });
  it('skips independent disks and physical RDMs', () => {
    const disk = { diskMode: 'persistent', compatibilityMode: undefined } as unknown as VirtualDiskInfo;
    assert.equal(unsnapshottable(disk), undefined);
    assert.match(unsnapshottable({ ...disk, diskMode: 'independent_persistent' })!, /independent-persistent/);
    assert.match(unsnapshottable({ ...disk, compatibilityMode: 'physicalMode' })!, /physical-mode raw device mapping/);
  });
});

describe('QueryChangedDiskAreas paging', () => {
  /** A session whose server answers 1 MiB windows, as vCenter answers in pages. */
  function pagingSession(areas: { start: number; length: number }[], window: number, calls: number[]): VsphereSession {
    return {
      call: async (_m: string, _s: MoRef, p: { startOffset: number }) => {
        calls.push(p.startOffset);
        const end = p.startOffset + window;
        const inside = areas.filter((a) => a.start >= p.startOffset && a.start < end)
          .map((a) => `<changedArea><start>${a.start}</start><length>${a.length}</length></changedArea>`).join('');
        return parseXml(`<x><returnval><startOffset>${p.startOffset}</startOffset><length>${window}</length>${inside}</returnval></x>`)['x'] as XmlNode;
      },
    } as unknown as VsphereSession;
  }
  it('loops until the whole disk is covered and gathers every page', async () => {
    const areas = [{ start: 0, length: 65536 }, { start: 1_500_000, length: 4096 }, { start: 3 * 2 ** 20, length: 2 ** 20 }];
    const calls: number[] = [];
    const got = await queryChangedDiskAreas(pagingSession(areas, 2 ** 20, calls), new MoRef('VirtualMachine', 'vm-1'), new MoRef('VirtualMachineSnapshot', 's'), 2000, 4 * 2 ** 20, '*');
    assert.deepEqual(got, areas);
    assert.deepEqual(calls, [0, 2 ** 20, 2 * 2 ** 20, 3 * 2 ** 20]);
  });
  it('refuses a server that makes no progress instead of looping forever', async () => {
    const stuck = pagingSession([], 0, []);
    await assert.rejects(queryChangedDiskAreas(stuck, new MoRef('VirtualMachine', 'vm-1'), new MoRef('VirtualMachineSnapshot', 's'), 2000, 2 ** 20, '*'), /made no progress/);
  });
});
