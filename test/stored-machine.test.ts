/**
 * The manifest's `machine` as a union tagged by kind: a generation written before the
 * union (kind "vsphere-vm", version 1) reads back unchanged; no machine, or a kind this
 * build does not know, is not a VM backup; a malformed record is damage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError, RepositoryDamagedError } from '../src/errors.js';
import { decodeManifest } from '../src/repository/generation.js';
import { storedMachine } from '../src/providers/stored-machine.js';

/** A version 1 manifest of a VM backup, as vmbkp has written them since VM backups exist. */
const MANIFEST = `{
 "version": 1,
 "set": "web01",
 "generation": 2,
 "id": "0b9a4c7e-3f41-4c8e-9d55-2f7b1c3e6a10",
 "started": "2026-11-22T03:15:00.000Z",
 "finished": "2026-11-22T03:16:30.000Z",
 "mode": "auto",
 "disks": [
  {
   "name": "2000",
   "size": 1048576,
   "chunkSize": 262144,
   "index": ["${'ab'.repeat(32)}"],
   "mode": "incr",
   "source": "disk 2000 of VM web01",
   "changeToken": "52 3c 1a/7",
   "stats": { "bytesRead": 262144, "bytesStored": 1000, "chunks": 4, "chunksZero": 0, "chunksStored": 1, "durationMs": 12 }
  }
 ],
 "machine": {
  "kind": "vsphere-vm",
  "vcenter": "vc.example.com",
  "moref": "vm-42",
  "name": "web01",
  "snapshot": "vmbkp-0b9a4c7e-3f41-4c8e-9d55-2f7b1c3e6a10",
  "changeTracking": true,
  "disks": [
   { "name": "2000", "key": 2000, "label": "Hard disk 1", "fileName": "[ds1] web01/web01.vmdk", "controllerKey": 1000,
     "unitNumber": 0, "capacity": 1048576, "diskMode": "persistent", "thinProvisioned": true },
   { "name": "2001", "key": 2001, "label": "Hard disk 2", "fileName": "[ds1] web01/web01_1.vmdk", "controllerKey": 1000,
     "unitNumber": 1, "capacity": 2097152, "diskMode": "independent_persistent", "skipped": "independent disks cannot be snapshotted" }
  ],
  "config": { "name": { "#text": "web01" } },
  "ovf": "<Envelope/>"
 }
}`;

function manifestWith(machine: unknown) {
  const m = JSON.parse(MANIFEST) as Record<string, unknown>;
  if (machine === undefined) delete m['machine'];
  else m['machine'] = machine;
  return decodeManifest(Buffer.from(JSON.stringify(m)), 'web01/00000002');
}

describe('stored machine records', () => {
  it('a vsphere-vm record written before the union reads back field for field', () => {
    const m = decodeManifest(Buffer.from(MANIFEST), 'web01/00000002');
    const machine = storedMachine(m);
    assert.deepEqual(machine, (JSON.parse(MANIFEST) as { machine: unknown }).machine);
    assert.equal(machine.kind, 'vsphere-vm');
    assert.deepEqual(machine.disks.map((d) => [d.name, d.skipped ?? null]), [['2000', null], ['2001', 'independent disks cannot be snapshotted']]);
  });

  it('no machine, or a kind this build does not know, is refused as not a VM backup, naming the disks', () => {
    for (const machine of [undefined, { kind: 'libvirt-domain', name: 'web01' }, { name: 'no kind' }]) {
      assert.throws(() => storedMachine(manifestWith(machine)), (err: unknown) => {
        assert.ok(err instanceof InputError);
        assert.match(err.message, /^set web01 generation 2 is not a VM backup .*restore its disks with --disk NAME --to URI \(disks: 2000\)$/);
        return true;
      });
    }
  });

  it('a vsphere-vm record missing a field is damage, naming the field', () => {
    const machine = (JSON.parse(MANIFEST) as { machine: Record<string, unknown> }).machine;
    delete machine['disks'];
    assert.throws(() => storedMachine(manifestWith(machine)), (err: unknown) => {
      assert.ok(err instanceof RepositoryDamagedError);
      assert.match(err.message, /^set web01 generation 2: the stored VM configuration is malformed \(disks: /);
      return true;
    });
  });
});
