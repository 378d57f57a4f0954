/**
 * The process-identity module: who owns a lock, an upload, a snapshot or a restore, and
 * whether that process still runs — judged against this machine's real /proc.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  type ProcessIdentity, formatOwner, isThisProcess, ownerState, parseOwner, processStart, thisProcess,
} from '../src/process-identity.js';
import { isStale } from '../src/repository/lock.js';
import { parseRestoreMarker, restoreMarkerValue } from '../src/vsphere/restore-marker.js';
import { backupSnapshotDescription, lastHeartbeat, snapshotOwner, withoutHeartbeat } from '../src/vsphere/snapshot-owner.js';
import { lastSignOfLife } from '../src/providers/vsphere/snapshot-heartbeat.js';
import { MoRef } from '../src/vsphere/xml.js';
import { tempDir, vmbkp } from './helpers.js';
import { openTestRepository } from './repo-internals.js';

/** A pid that cannot exist on Linux (pid_max is at most 2^22). */
const NO_SUCH_PID = 4194305;
/** Field 22 of /proc/PID/stat, read here independently of the module. */
function startTicks(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}
/** Another start time than `start`, for the reused-pid case. */
const otherStart = (start: string) => String(BigInt(start) + 1n);

describe('process identity', () => {
  it('this process: host, pid, start time from /proc and the boot id; alive', () => {
    const me = thisProcess();
    assert.equal(me.host, hostname());
    assert.equal(me.pid, process.pid);
    assert.equal(me.start, startTicks(process.pid));
    assert.equal(me.boot, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    assert.equal(ownerState(me), 'alive');
    assert.equal(isThisProcess(me), true);
  });

  it('a pid that does not exist is dead', () => {
    assert.equal(ownerState({ host: hostname(), pid: NO_SUCH_PID }), 'dead');
    assert.equal(ownerState({ host: hostname(), pid: NO_SUCH_PID, start: '1' }), 'dead');
    assert.equal(processStart(NO_SUCH_PID), undefined);
  });

  it('a reused pid: our pid with another start time is dead, and so is one of another boot', () => {
    const me = thisProcess();
    const reused: ProcessIdentity = { ...me, start: otherStart(me.start!) };
    assert.equal(ownerState(reused), 'dead');
    assert.equal(isThisProcess(reused), false);
    const earlierBoot: ProcessIdentity = { ...me, boot: '00000000-0000-4000-8000-000000000000' };
    assert.equal(ownerState(earlierBoot), 'dead');
  });

  it('another process: alive while it runs with its start time, dead once it is gone', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const owner: ProcessIdentity = { host: hostname(), pid: child.pid!, start: startTicks(child.pid!) };
      assert.equal(ownerState(owner), 'alive');
      assert.equal(isThisProcess(owner), false);
      child.kill('SIGKILL');
      await exited;
      assert.equal(ownerState(owner), 'dead');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('another host is unknown, whatever its pid', () => {
    assert.equal(ownerState({ ...thisProcess(), host: `not-${hostname()}` }), 'unknown');
    assert.equal(ownerState({ host: `not-${hostname()}`, pid: NO_SUCH_PID }), 'unknown');
  });

  it('text form: round trip, and the old form without a start time is judged by pid alone', () => {
    const me = thisProcess();
    assert.deepEqual(parseOwner(formatOwner(me)), me);
    assert.equal(formatOwner({ host: 'h1', pid: 42 }), 'host=h1 pid=42');
    // What versions before start times wrote into snapshot descriptions.
    const old = parseOwner(`vmbkp backup; host=${hostname()} pid=${process.pid} started=2026-11-22T03:16:31.000Z`);
    assert.deepEqual(old, { host: hostname(), pid: process.pid });
    assert.equal(ownerState(old!), 'alive');
    assert.equal(ownerState({ ...old!, pid: NO_SUCH_PID }), 'dead');
    assert.equal(parseOwner('a snapshot someone else took'), undefined);
    assert.equal(parseOwner('xhost=h pid=1'), undefined);
  });

  it('snapshot descriptions and restore markers carry the start time, and old ones still parse', () => {
    const me = thisProcess();
    const desc = backupSnapshotDescription(me, new Date('2026-11-22T03:16:31.000Z'));
    assert.equal(desc, `vmbkp backup; host=${me.host} pid=${me.pid} pidStart=${me.start} boot=${me.boot} started=2026-11-22T03:16:31.000Z`);
    assert.deepEqual(snapshotOwner(desc), me);
    assert.equal(snapshotOwner(undefined), undefined);

    const marker = restoreMarkerValue({ ...me, started: '2026-11-22T03:16:31.000Z' });
    assert.equal(marker, `incomplete host=${me.host} pid=${me.pid} pidStart=${me.start} boot=${me.boot} started=2026-11-22T03:16:31.000Z`);
    assert.deepEqual(parseRestoreMarker(marker), { ...me, started: '2026-11-22T03:16:31.000Z' });
    assert.deepEqual(parseRestoreMarker('incomplete host=b1 pid=7 started=2026-11-22T03:16:31.000Z'),
      { host: 'b1', pid: 7, started: '2026-11-22T03:16:31.000Z' });
    assert.equal(parseRestoreMarker('done'), undefined);
  });

  it('a snapshot description\'s heartbeat: written, replaced, read; without one the creation time counts', () => {
    const me = thisProcess();
    const started = new Date('2026-11-22T03:16:31.000Z');
    const plain = backupSnapshotDescription(me, started);
    const beating = backupSnapshotDescription(me, started, new Date('2026-11-22T04:00:00.000Z'));
    assert.equal(beating, `${plain} alive=2026-11-22T04:00:00.000Z`);
    assert.deepEqual(snapshotOwner(beating), me);
    assert.equal(withoutHeartbeat(beating), plain);
    assert.equal(lastHeartbeat(beating)?.toISOString(), '2026-11-22T04:00:00.000Z');
    assert.equal(lastHeartbeat(plain), undefined);
    assert.equal(lastHeartbeat(`${plain} alive=yesterday`), undefined);
    const ref = new MoRef('VirtualMachineSnapshot', 'snapshot-1');
    assert.equal(lastSignOfLife({ ref, name: 'vmbkp-x', created: '2026-11-22T03:16:32Z', description: beating, quiesced: false, state: 'poweredOn' })?.toISOString(), '2026-11-22T04:00:00.000Z');
    assert.equal(lastSignOfLife({ ref, name: 'vmbkp-x', created: '2026-11-22T03:16:32Z', description: plain, quiesced: false, state: 'poweredOn' })?.toISOString(), '2026-11-22T03:16:32.000Z');
    assert.equal(lastSignOfLife({ ref, name: 'vmbkp-x', created: undefined, description: plain, quiesced: false, state: 'poweredOn' }), undefined);
  });

  it('repository locks: a reused pid or another boot is stale; an old lock is judged by pid alone', () => {
    const me = thisProcess();
    const time = new Date().toISOString();
    const lock = { kind: 'shared' as const, operation: 'backup of vm', host: me.host, pid: me.pid, time };
    assert.equal(isStale({ ...lock, pidStart: me.start!, boot: me.boot! }), false);
    assert.equal(isStale({ ...lock, pidStart: otherStart(me.start!) }), true);
    assert.equal(isStale({ ...lock, pidStart: me.start!, boot: '00000000-0000-4000-8000-000000000000' }), true);
    assert.equal(isStale(lock), false);
    assert.equal(isStale({ ...lock, pid: NO_SUCH_PID }), true);
    // Another host: by age, as before.
    assert.equal(isStale({ ...lock, host: `not-${me.host}` }), false);
    assert.equal(isStale({ ...lock, host: `not-${me.host}`, time: '2000-01-01T00:00:00.000Z' }), true);
  });
});

describe('repository locks through the CLI', () => {
  it('an exclusive lock naming a running pid with another start time is stale: removed with a warning; with its own start time it blocks', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const repo = path.join(dir, 'repo');
      assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
      const me = thisProcess();
      const lock = (pidStart: string) => JSON.stringify({
        kind: 'exclusive', operation: 'gc', host: me.host, pid: me.pid, pidStart, boot: me.boot, time: new Date().toISOString(),
      });
      // Written as vmbkp writes locks: through the repository's object codec (sealed when encrypted).
      const opened = await openTestRepository(repo);
      const putLock = (name: string, record: string) => opened.backend.put(`locks/${name}`, opened.objects.seal(`locks/${name}`, Buffer.from(record)));
      await putLock('a-reused-pid.json', lock(otherStart(me.start!)));
      const r = await vmbkp(['verify', '--repo', repo]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`^vmbkp: warning: removed stale lock of gc \\(pid ${me.pid} on .*\\): that process is gone$`, 'm'));
      assert.deepEqual(await fs.readdir(path.join(repo, 'locks')), []);

      await putLock('a-running-gc.json', lock(me.start!));
      const blocked = await vmbkp(['verify', '--repo', repo]);
      assert.equal(blocked.code, 4, blocked.stderr);
      assert.match(blocked.stderr, new RegExp(`is locked by gc \\(pid ${me.pid} on `));
    } finally {
      await cleanup();
    }
  });
});
