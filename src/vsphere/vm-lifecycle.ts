/** Powering a VM on, and destroying one (Destroy_Task unregisters it and deletes its files). */
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import type { MoRef } from './xml.js';

export async function powerOnVm(session: VsphereSession, vm: MoRef, what: string): Promise<void> {
  const res = await session.call('PowerOnVM_Task', vm);
  await waitForTask(session, taskOf(res), { what });
}

export async function destroyVm(session: VsphereSession, vm: MoRef, what: string): Promise<void> {
  const res = await session.call('Destroy_Task', vm);
  await waitForTask(session, taskOf(res), { what });
}
