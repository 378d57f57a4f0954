/**
 * assessChangeTrust without a lab: the backup mark (its generation, or the generation it
 * followed after a failed run), the instance UUID, and a disk's change-id sequence that
 * went back (a revert the mark cannot see, e.g. from a repository whose mark was lost).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assessChangeTrust } from '../src/providers/vsphere/change-trust.js';
import type { GenerationManifest } from '../src/repository/generation.js';
import { backupMarkKey, parseBackupMark } from '../src/vsphere/backup-mark.js';
import type { VirtualDiskInfo } from '../src/vsphere/vm.js';
import { type XmlNode, parseXml } from '../src/vsphere/xml.js';

const REPO = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const KEY = backupMarkKey(REPO);
const UUID = '50290b6c-1111-4222-8333-944455556666';
const PREV = 'aaaaaaaa-0000-4000-8000-000000000001';
const CTK = '52 5b 59 2e 71 9b df ba-1d e9 e9 dd e9 a0 92 da';

function config(opts: { uuid?: string; mark?: string }): XmlNode {
  const mark = opts.mark === undefined ? '' : `<extraConfig><key>${KEY}</key><value>${opts.mark}</value></extraConfig>`;
  return parseXml(`<config><instanceUuid>${opts.uuid ?? UUID}</instanceUuid><extraConfig><key>other</key><value>1</value></extraConfig>${mark}</config>`)['config'] as XmlNode;
}

function previous(changeToken = `${CTK}/40`, instanceUuid: string | null = UUID): GenerationManifest {
  return {
    version: 1, set: 'web01', generation: 7, id: PREV, started: '', finished: '', mode: 'auto',
    disks: [{ name: '2000', size: 1024, chunkSize: 1024, index: [], mode: 'incr', source: 'x', changeToken, stats: { bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, durationMs: 0 } }],
    machine: { kind: 'vsphere-vm', ...(instanceUuid ? { instanceUuid } : {}) },
  } as unknown as GenerationManifest;
}

const disk = (changeId: string | undefined) => ({ key: 2000, changeId } as VirtualDiskInfo);
const assess = (cfg: XmlNode, prev: GenerationManifest | undefined) =>
  assessChangeTrust({ vmName: 'web01', set: 'web01', id: 'new-id', config: cfg, previous: prev, repositoryId: REPO });

describe('change trust', () => {
  it('the mark of the previous generation, or of a run that failed after it: trusted, and the new mark follows it', () => {
    for (const mark of [PREV, `${PREV} after x`, `failed-run after ${PREV}`]) {
      const t = assess(config({ mark }), previous());
      assert.equal(t.vmVoid, undefined, mark);
      assert.equal(t.diskVoid(disk(`${CTK}/41`)), undefined);
      assert.deepEqual(t.mark, { key: KEY, value: `new-id after ${PREV}` });
      assert.deepEqual(t.warnings, []);
    }
  });

  it('another mark or none: every disk void, and the new mark follows nothing', () => {
    const other = assess(config({ mark: 'older after oldest' }), previous());
    assert.match(other.diskVoid(disk(`${CTK}/41`))!, new RegExp(`^the VM was reverted to a snapshot, or its configuration replaced, since generation 7 \\(its backup mark ${KEY.replace(/\./g, '\\.')} is "older after oldest", not generation 7's id ${PREV}\\)$`));
    assert.deepEqual(other.mark, { key: KEY, value: 'new-id' });
    const none = assess(config({}), previous());
    assert.match(none.vmVoid!, /^the VM has no backup mark vmbkp\.generation\.0a1b2c3d \(its disks were overwritten by a restore/);
    assert.deepEqual(none.mark, { key: KEY, value: 'new-id' });
  });

  it('another instance UUID: void, with a warning naming both; a generation without one is not judged by it', () => {
    const t = assess(config({ uuid: 'other-uuid', mark: PREV }), previous());
    assert.equal(t.vmVoid, `the VM's instance UUID is other-uuid, generation 7's was ${UUID}`);
    assert.equal(t.warnings.length, 1);
    assert.match(t.warnings[0]!, /its instance UUID is other-uuid, the generation's is 50290b6c-/);
    assert.equal(assess(config({ uuid: 'other-uuid', mark: PREV }), previous(undefined, null)).vmVoid, undefined);
  });

  it('a change id of the same session with a lower sequence: that disk void (a revert); another session is left to vSphere', () => {
    const t = assess(config({ mark: PREV }), previous());
    assert.match(t.diskVoid(disk(`${CTK}/12`))!, /^the disk's change id went back from .*\/40 \(generation 7\) to .*\/12: the VM was reverted to a snapshot$/);
    assert.equal(t.diskVoid(disk(`${CTK}/40`)), undefined);
    assert.equal(t.diskVoid(disk('52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/3')), undefined);
    assert.equal(t.diskVoid(disk(undefined)), undefined);
  });

  it('no previous generation or no repository id: nothing void; no mark without a repository id', () => {
    const first = assess(config({}), undefined);
    assert.equal(first.vmVoid, undefined);
    assert.deepEqual(first.mark, { key: KEY, value: 'new-id' });
    const noRepo = assessChangeTrust({ vmName: 'web01', set: 'web01', id: 'n', config: config({}), previous: previous() });
    assert.equal(noRepo.vmVoid, undefined);
    assert.equal(noRepo.mark, undefined);
  });

  it('marks parse back', () => {
    assert.deepEqual(parseBackupMark('a after b'), { generation: 'a', after: 'b' });
    assert.deepEqual(parseBackupMark('a'), { generation: 'a' });
    assert.equal(parseBackupMark('a b c'), undefined);
    assert.equal(KEY, 'vmbkp.generation.0a1b2c3d');
  });
});
