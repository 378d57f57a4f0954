/**
 * The backup snapshot as the quiesce policy asks for it, and how consistent it really is.
 * vSphere ignores `quiesce` when the VM is off or its VMware Tools are not available
 * (the snapshot is then taken unquiesced, and its tree node's `quiesced` is false), and
 * fails the task with a quiesce fault when the guest could not quiesce (a VSS writer, a
 * pre-freeze script). So vmbkp never trusts the request: it reads what the snapshot is.
 */
import { IoError, describeCause } from '../../errors.js';
import { faultOf } from '../../vsphere/errors.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { createSnapshot, removeSnapshot, snapshotsOf } from '../../vsphere/vm.js';
import { type MoRef, textAt } from '../../vsphere/xml.js';
import type { Consistency, QuiescePolicy } from '../machine-provider.js';

/** Faults of a quiesced CreateSnapshot_Task that mean "the guest could not be quiesced". */
const QUIESCE_FAULTS = new Set(['ApplicationQuiesceFault', 'FilesystemQuiesceFault', 'ToolsUnavailable']);

function isQuiesceFailure(err: unknown): boolean {
  const fault = faultOf(err);
  return fault !== undefined && (QUIESCE_FAULTS.has(fault) || /quiesc/i.test(describeCause(err)));
}

export interface BackupSnapshot {
  readonly snapshot: MoRef;
  readonly consistency: Consistency;
}

export interface BackupSnapshotOptions {
  readonly description: string;
  readonly memory: boolean;
  readonly quiesce: QuiescePolicy;
}

const policyName = (q: QuiescePolicy) => (q === 'required' ? 'quiescing is required' : 'quiescing was asked for');

/**
 * Takes snapshot `name` of the VM. With `quiesce`, a snapshot that vSphere did not quiesce
 * (or a quiesce that failed, after which it is taken again unquiesced) is a warning, or with
 * `required` an error — the snapshot then removed. A powered-off VM has nothing to quiesce.
 */
export async function takeBackupSnapshot(session: VsphereSession, vm: VmRef, name: string, opts: BackupSnapshotOptions,
  warn: (m: string) => void): Promise<BackupSnapshot> {
  const create = (quiesce: boolean) => createSnapshot(session, vm.ref, vm.name, name, { description: opts.description, memory: opts.memory, quiesce });
  let snapshot: MoRef;
  let failedQuiesce: unknown;
  try {
    snapshot = await create(opts.quiesce !== false);
  } catch (err) {
    if (opts.quiesce === false || !isQuiesceFailure(err)) throw err;
    if (opts.quiesce === 'required') {
      throw new IoError(`VM ${vm.name} could not be quiesced (${describeCause(err)}), and ${policyName(opts.quiesce)}: not backed up`, { cause: err });
    }
    failedQuiesce = err;
    warn(`VM ${vm.name} could not be quiesced (${describeCause(err)}): taking a crash-consistent snapshot instead`);
    await removeByName(session, vm, name);
    snapshot = await create(false);
  }

  const props = await retrieveOne(session, vm.ref, ['snapshot', 'guest']);
  const node = snapshotsOf(props.get('snapshot')).find((s) => s.ref.value === snapshot.value);
  const consistency: Consistency = node?.state === 'poweredOff' ? 'powered-off' : node?.quiesced === true ? 'quiesced' : 'crash';
  if (opts.quiesce !== false && consistency === 'crash' && failedQuiesce === undefined) {
    const tools = textAt(props.get('guest'), 'toolsRunningStatus');
    const why = tools !== undefined && tools !== 'guestToolsRunning'
      ? `VMware Tools are not running in it (${textAt(props.get('guest'), 'toolsStatus') ?? tools})`
      : node === undefined ? 'its snapshot tree does not show it' : 'vSphere did not quiesce it';
    if (opts.quiesce === 'required') {
      // The caller removes the snapshot when this throws (see beginVmBackup).
      throw new IoError(`snapshot ${name} of VM ${vm.name} is not quiesced (${why}), and ${policyName(opts.quiesce)}: not backed up`);
    }
    warn(`snapshot ${name} of VM ${vm.name} is not quiesced (${why}): this backup is crash-consistent`);
  }
  return { snapshot, consistency };
}

/** Removes snapshots named `name` a failed task may have left, so the retry's is the only one. */
async function removeByName(session: VsphereSession, vm: VmRef, name: string): Promise<void> {
  const after = await retrieveOne(session, vm.ref, ['snapshot']).catch(() => undefined);
  for (const s of snapshotsOf(after?.get('snapshot')).filter((x) => x.name === name)) {
    await removeSnapshot(session, s.ref, `removing snapshot ${name} of VM ${vm.name}`).catch(() => {});
  }
}
