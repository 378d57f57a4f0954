/**
 * Generation selectors and disk names, without a repository: what each form picks among a
 * set's generations, and the one-line errors that list the candidates when none or several
 * fit. Local times are read in Europe/Berlin (UTC+1 in November), set before any date is made.
 */
process.env['TZ'] = 'Europe/Berlin';

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError, NotFoundError } from '../src/errors.js';
import { findDisk } from '../src/jobs/resolve.js';
import { type GenerationCandidate, chooseGeneration, parseGenerationSelector } from '../src/jobs/select-generation.js';
import { decodeManifest, type GenerationManifest } from '../src/repository/generation.js';

/** Three generations of set vm: 20 Nov 14:00 UTC, 21 Nov 09:30 UTC, 22 Nov 23:30 UTC (23 Nov 00:30 in Berlin). */
const GENS: GenerationCandidate[] = [
  { generation: 1, id: '3f2a91c0-0000-4000-8000-000000000001', started: '2026-11-20T14:00:05.120Z' },
  { generation: 2, id: '3f2ab7d2-0000-4000-8000-000000000002', started: '2026-11-21T09:30:00.000Z' },
  { generation: 3, id: 'c0ffee00-0000-4000-8000-000000000003', started: '2026-11-22T23:30:00.000Z' },
];

const pick = (text: string, gens: readonly GenerationCandidate[] = GENS) => chooseGeneration('vm', text, parseGenerationSelector(text), gens).generation;

function throwsOneLine(f: () => unknown, type: typeof InputError | typeof NotFoundError, pattern: RegExp): void {
  assert.throws(f, (err: Error) => {
    assert.ok(err instanceof type, `${err.name}: ${err.message}`);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('generation selectors', () => {
  it('a number picks that generation; its absence is named with the candidates', () => {
    assert.equal(pick('2'), 2);
    assert.deepEqual(parseGenerationSelector('17'), { kind: 'number', generation: 17 });
    throwsOneLine(() => pick('9'), NotFoundError, /^set vm has no generation 9 \(its generations: 1 \(3f2a91c0, 2026-11-20T14:00:05Z\), 2 /);
  });

  it('latest is the newest, latest~1 the one before, in any input order', () => {
    assert.equal(pick('latest'), 3);
    assert.equal(pick('latest~0'), 3);
    assert.equal(pick('latest~1'), 2);
    assert.equal(pick('latest~2', [...GENS].reverse()), 1);
  });

  it('latest~N past the oldest is an empty selection listing every generation', () => {
    throwsOneLine(() => pick('latest~3'), NotFoundError,
      /^set vm has no generation latest~3: it has 3 \(its generations: 1 \(3f2a91c0, 2026-11-20T14:00:05Z\), 2 \(3f2ab7d2, 2026-11-21T09:30:00Z\), 3 \(c0ffee00, 2026-11-22T23:30:00Z\)\)$/);
  });

  it('a bare date is the end of that local day: the newest generation started by then', () => {
    // Between generations 1 and 2.
    assert.equal(pick('2026-11-20'), 1);
    assert.equal(pick('2026-11-21'), 2);
    // Generation 3 started on 22 Nov in UTC but on 23 Nov in Berlin: the local day decides.
    assert.equal(pick('2026-11-22'), 2);
    assert.equal(pick('2026-11-23'), 3);
  });

  it('a date-time is local unless it carries a zone, and means the end of its minute or second', () => {
    // 14:00:05.120Z is 15:00:05.120 in Berlin.
    assert.equal(pick('2026-11-20T15:00:05'), 1);
    assert.equal(pick('2026-11-20T15:00'), 1);
    assert.throws(() => pick('2026-11-20T15:00:04'), NotFoundError);
    assert.throws(() => pick('2026-11-20T14:59'), NotFoundError);
    assert.throws(() => pick('2026-11-20T14:00:05Z'.replace('05', '04')), NotFoundError);
    assert.equal(pick('2026-11-20 15:01'), 1);
    assert.equal(pick('2026-11-21T09:30Z'), 2);
    assert.equal(pick('2026-11-21T09:29Z'), 1);
    assert.equal(pick('2026-11-21T09:29:59Z'), 1);
    assert.equal(pick('2026-11-21T10:30+01:00'), 2);
    assert.equal(pick('2026-11-21T04:29-05:00'), 1);
    assert.equal(pick('2026-11-22T23:30:00z'), 3);
  });

  it('a date before the first generation is an empty selection that lists the candidates', () => {
    throwsOneLine(() => pick('2026-11-19'), NotFoundError,
      /^set vm has no generation started at or before 2026-11-19 \(the end of that day\), 2026-11-19T22:59:59Z \(its generations: 1 \(3f2a91c0, .*3 \(c0ffee00, 2026-11-22T23:30:00Z\)\)$/);
  });

  it('an id prefix of 4 or more hex digits picks the one generation whose id starts with it (any case)', () => {
    assert.equal(pick('c0ff'), 3);
    assert.equal(pick('3F2AB'), 2);
    assert.equal(pick('3f2a91c0-0000'), 1);
    throwsOneLine(() => pick('dead'), NotFoundError, /^set vm has no generation whose id starts with dead \(its generations: /);
  });

  it('an ambiguous id prefix is refused, listing the generations it matches', () => {
    throwsOneLine(() => pick('3f2a'), InputError,
      /^generation "3f2a" of set vm is ambiguous: 2 ids start with it: 1 \(3f2a91c0, 2026-11-20T14:00:05Z\), 2 \(3f2ab7d2, 2026-11-21T09:30:00Z\); give more of the id$/);
  });

  it('anything else is invalid, saying what is accepted', () => {
    for (const bad of ['', 'last', 'latest~', 'latest-1', '0', '-1', 'abc', '2026-13-01', '2026-02-30', '2026-11-20T24:00', '2026-11-20T14:00+15:00', 'ghij']) {
      throwsOneLine(() => parseGenerationSelector(bad), InputError,
        new RegExp(`^generation ${JSON.stringify(bad).replace(/[+]/g, '\\+')} is invalid: `));
    }
    assert.match((() => { try { parseGenerationSelector('first'); } catch (e) { return (e as Error).message; } return ''; })(),
      /give a number, latest, latest~N, a date or date-time .* or 4 or more hex digits of a generation id$/);
  });

  it('a long candidate list shows its first and last six', () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ generation: i + 1, id: `${(i + 16).toString(16)}000000-0000-4000-8000-000000000000`, started: `2026-10-${String(i + 1).padStart(2, '0')}T00:00:00.000Z` }));
    throwsOneLine(() => pick('latest~25', many), NotFoundError, /\(its generations: 1 .*, 6 \([^)]*\), … 8 more …, 15 \(.*, 20 \([^)]*\)\)$/);
  });
});

/** A VM backup with two disks on SCSI 0 and one on SATA 1 (keys 2000, 2001, 16000). */
function vmManifest(): GenerationManifest {
  const disk = (name: string) => ({
    name, size: 1024, chunkSize: 1024, index: [], mode: 'full', source: `disk ${name}`,
    stats: { bytesRead: 0, bytesStored: 0, chunks: 0, chunksZero: 0, chunksStored: 0, durationMs: 0 },
  });
  const stored = (key: number, label: string, controllerKey: number, unitNumber: number) => ({
    name: String(key), key, label, fileName: `[ds] vm/${key}.vmdk`, controllerKey, unitNumber, capacity: 1024, diskMode: 'persistent',
  });
  const device = (type: string, key: number, busNumber: number) => ({ '@xsi:type': type, key: String(key), busNumber: String(busNumber) });
  return decodeManifest(Buffer.from(JSON.stringify({
    version: 1, set: 'web', generation: 4, id: GENS[0]!.id, started: GENS[0]!.started, finished: GENS[0]!.started, mode: 'auto',
    disks: [disk('2000'), disk('2001'), disk('16000')],
    machine: {
      kind: 'vsphere-vm', vcenter: 'vc', moref: 'vm-1', name: 'web', snapshot: 's', changeTracking: true,
      disks: [stored(2000, 'Hard disk 1', 1000, 0), stored(2001, 'Hard disk 2', 1000, 1), stored(16000, 'Hard disk 3', 15000, 0)],
      config: { hardware: { device: [device('ParaVirtualSCSIController', 1000, 0), device('VirtualAHCIController', 15000, 1)] } },
      ovf: '<Envelope/>',
    },
  })), 'web/4');
}

describe('disks by the names people see', () => {
  it('a VM disk answers to its key, its label (any case or spacing) and its bus position', () => {
    const m = vmManifest();
    for (const [name, key] of [['2001', '2001'], ['Hard disk 2', '2001'], ['hard  DISK 2', '2001'], ['scsi0:1', '2001'], ['SCSI0:0', '2000'], ['sata1:0', '16000']]) {
      assert.equal(findDisk(m, name!).name, key, name);
    }
  });

  it('an unknown disk is a one-line error listing each disk with its label and position', () => {
    throwsOneLine(() => findDisk(vmManifest(), 'Hard disk 9'), NotFoundError,
      /^set web generation 4 has no disk Hard disk 9 \(it has: 2000 \(Hard disk 1, scsi0:0\), 2001 \(Hard disk 2, scsi0:1\), 16000 \(Hard disk 3, sata1:0\)\)$/);
    throwsOneLine(() => findDisk(vmManifest(), 'scsi1:0'), NotFoundError, /has no disk scsi1:0 \(it has: 2000 \(Hard disk 1, scsi0:0\)/);
  });

  it('a label two disks share is ambiguous, naming both', () => {
    const m = vmManifest();
    const machine = m.machine as { disks: { label: string }[] };
    machine.disks[1]!.label = 'Hard disk 1';
    throwsOneLine(() => findDisk(m, 'hard disk 1'), InputError,
      /^set web generation 4: disk "hard disk 1" is ambiguous: it names 2000 \(Hard disk 1, scsi0:0\), 2001 \(Hard disk 1, scsi0:1\) \(it has: /);
  });

  it('a plain disk set keeps its names', () => {
    const m = vmManifest();
    delete (m as { machine?: unknown }).machine;
    assert.equal(findDisk(m, '2000').name, '2000');
    throwsOneLine(() => findDisk(m, 'Hard disk 1'), NotFoundError, /^set web generation 4 has no disk Hard disk 1 \(it has: 2000, 2001, 16000\)$/);
  });
});
