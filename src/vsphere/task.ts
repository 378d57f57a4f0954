/**
 * Waiting for a vSphere task: polls its `info` until it succeeds or fails, reports
 * progress, and turns a task's fault into a VsphereFaultError naming the operation.
 * A task is given up only when it has made no progress for a while (task-stall.ts):
 * a consolidation of a big disk legitimately runs for hours, reporting progress.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { VsphereFaultError, describeMissing, missingPrivilegeOf } from './errors.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { formatStall, taskStallMs } from './task-stall.js';
import { type MoRef, type XmlNode, at, child, moRefOf, numberAt, textAt, xsiType } from './xml.js';

export interface TaskWait {
  /** What the task does, for messages: "creating snapshot vmbkp-… of VM web01". */
  readonly what: string;
  readonly onProgress?: (percent: number) => void;
  /** Give up after this long without progress (default: VMBKP_TASK_STALL_TIMEOUT, else 1 hour). */
  readonly timeoutMs?: number;
}

/** Waits for the task and returns its result element (undefined when the task returns nothing). */
export async function waitForTask(session: VsphereSession, task: MoRef, wait: TaskWait): Promise<XmlNode | undefined> {
  const stallMs = wait.timeoutMs ?? taskStallMs();
  let seen = ''; // the state and progress last seen: a change is progress
  let movedAt = Date.now();
  let delay = 50;
  for (;;) {
    const info = (await retrieveOne(session, task, ['info'])).get('info');
    const state = textAt(info, 'state');
    if (state === 'success') return child(info, 'result');
    if (state === 'error') {
      const fault = at(info, 'error.fault');
      const type = xsiType(fault) ?? 'SystemError';
      const msg = textAt(info, 'error.localizedMessage') || type;
      // A task refused for a privilege (checked as it runs) names it, as a refused call does.
      const missing = type === 'NoPermission' ? missingPrivilegeOf(fault) : undefined;
      const needs = missing ? ` (user ${session.userName} needs ${describeMissing(missing)})` : '';
      throw new VsphereFaultError(`${wait.what} failed: ${type === msg ? type : `${type}: ${msg}`}${needs}`, type, missing ? { missing } : {});
    }
    const progress = numberAt(info, 'progress');
    if (progress !== undefined) wait.onProgress?.(progress);
    const now = `${state}/${progress ?? ''}`;
    if (now !== seen) {
      seen = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > stallMs) {
      const name = textAt(info, 'descriptionId') || textAt(info, 'name') || 'task';
      throw new VsphereFaultError(`${wait.what}: vSphere task ${task.value} (${name}) made no progress for ${formatStall(stallMs)}`
        + `${progress !== undefined ? ` (stuck at ${progress}%)` : ` (${state ?? 'no state'}, no progress reported)`}; `
        + 'it may still be running in vCenter; if such tasks pause longer, raise VMBKP_TASK_STALL_TIMEOUT', 'Timeout');
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
}

/** The task a `…_Task` method returned. */
export function taskOf(response: XmlNode): MoRef {
  const task = moRefOf(child(response, 'returnval'));
  if (!task) throw new VsphereFaultError('the server returned no task', 'InvalidResponse');
  return task;
}
