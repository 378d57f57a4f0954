/**
 * Whether vSphere's change tracking since the set's previous generation describes the
 * VM being backed up now. QueryChangedDiskAreas answers relative to the disk's own
 * history, and that history is not the backups' when:
 *  - the VM was reverted to a snapshot (the changes reported are relative to the revert
 *    point, and change ids handed out later stay accepted: VMware's KB asks for a full
 *    backup after a revert);
 *  - its disks were written around the VM (`restore --overwrite` uploads flat files,
 *    which ESXi's tracking need not see);
 *  - it is another VM under the same name (recreated, cloned, on another vCenter).
 * Each is found from the backup mark (vsphere/backup-mark.ts), the instance UUID and the
 * disks' change ids; an untrusted disk is read whole (diff), never incr.
 */
import { describeCause } from '../../errors.js';
import type { GenerationManifest } from '../../repository/generation.js';
import { BACKUP_MARK_PREFIX, backupMarkKey, extraConfigOf, formatBackupMark, parseBackupMark, setAdvancedSettings } from '../../vsphere/backup-mark.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { faultOf } from '../../vsphere/errors.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { taskOf, waitForTask } from '../../vsphere/task.js';
import type { VirtualDiskInfo } from '../../vsphere/vm.js';
import { type XmlNode, boolAt, textAt } from '../../vsphere/xml.js';

export interface ChangeTrust {
  /** Why no disk's change data can be trusted, or undefined. */
  readonly vmVoid: string | undefined;
  /** Said once per backup (an instance UUID that changed). */
  readonly warnings: readonly string[];
  /** The mark to leave on the VM once its snapshot is taken (none without a repository id). */
  readonly mark: { readonly key: string; readonly value: string } | undefined;
  /** Why this disk's change data cannot be trusted, or undefined. */
  diskVoid(disk: VirtualDiskInfo): string | undefined;
}

/** The instance UUID a vsphere-vm generation recorded (absent in older generations). */
function recordedInstanceUuid(previous: GenerationManifest): string | undefined {
  const m = previous.machine;
  if (typeof m !== 'object' || m === null) return undefined;
  const uuid = (m as { readonly instanceUuid?: unknown }).instanceUuid;
  return typeof uuid === 'string' && uuid !== '' ? uuid : undefined;
}

/** "prefix/sequence", as vSphere writes change ids. */
function splitChangeId(id: string | undefined): { prefix: string; seq: number } | undefined {
  const i = id?.lastIndexOf('/') ?? -1;
  if (!id || i <= 0) return undefined;
  const seq = Number(id.slice(i + 1));
  return Number.isSafeInteger(seq) ? { prefix: id.slice(0, i), seq } : undefined;
}

/**
 * Judges the VM as `config` shows it (the backup snapshot's, or for a dry run the VM's
 * now) against `previous`, the set's newest generation. `id` is the new generation's.
 */
export function assessChangeTrust(a: {
  readonly vmName: string; readonly set: string; readonly id: string; readonly config: XmlNode | undefined;
  readonly previous?: GenerationManifest | undefined; readonly repositoryId?: string | undefined;
}): ChangeTrust {
  const { previous } = a;
  const key = a.repositoryId ? backupMarkKey(a.repositoryId) : undefined;
  const warnings: string[] = [];
  let vmVoid: string | undefined;

  if (previous) {
    const gen = `generation ${previous.generation}`;
    const was = recordedInstanceUuid(previous);
    const now = textAt(a.config, 'instanceUuid');
    if (was && now && was !== now) {
      warnings.push(`VM ${a.vmName} is not the VM ${gen} of set ${a.set} was made of: its instance UUID is ${now}, the generation's is ${was} (recreated, cloned, or another vCenter's VM of that name); its disks are read whole`);
      vmVoid = `the VM's instance UUID is ${now}, ${gen}'s was ${was}`;
    }
    if (key && vmVoid === undefined) {
      const value = extraConfigOf(a.config).get(key);
      const mark = value ? parseBackupMark(value) : undefined;
      if (!value) {
        vmVoid = `the VM has no backup mark ${key} (its disks were overwritten by a restore, it was recreated, or ${gen} was made by an older vmbkp)`;
      } else if (mark?.generation !== previous.id && mark?.after !== previous.id) {
        vmVoid = `the VM was reverted to a snapshot, or its configuration replaced, since ${gen} (its backup mark ${key} is "${value}", not ${gen}'s id ${previous.id})`;
      }
    }
  }

  const mark = key ? { key, value: formatBackupMark(previous && vmVoid === undefined ? { generation: a.id, after: previous.id } : { generation: a.id }) } : undefined;
  return {
    vmVoid, warnings, mark,
    diskVoid(disk) {
      if (vmVoid !== undefined) return vmVoid;
      const token = previous?.disks.find((d) => d.name === String(disk.key))?.changeToken;
      const was = splitChangeId(token);
      const now = splitChangeId(disk.changeId);
      // Belt and braces: within one tracking session the sequence only grows, unless the disk was reverted.
      if (was && now && was.prefix === now.prefix && now.seq < was.seq) {
        return `the disk's change id went back from ${token} (generation ${previous!.generation}) to ${disk.changeId}: the VM was reverted to a snapshot`;
      }
      return undefined;
    },
  };
}

/** Leaves the backup mark; a failure is only warned about (the next backup then reads whole disks). */
export async function leaveBackupMark(session: VsphereSession, vm: VmRef, trust: ChangeTrust, warn: (m: string) => void): Promise<void> {
  if (!trust.mark) return;
  try {
    await setAdvancedSettings(session, vm.ref, { [trust.mark.key]: trust.mark.value }, `marking VM ${vm.name} with its backup (${trust.mark.key})`);
  } catch (err) {
    // A refused privilege would make every backup read whole disks, unnoticed: the user must grant it.
    if (faultOf(err) === 'NoPermission') throw err;
    warn(`${describeCause(err)}: the next backup of VM ${vm.name} reads whole disks`);
  }
}

/**
 * Before `restore --overwrite` writes a VM's disks around it: removes every repository's
 * backup mark, and starts a new change-tracking session (off, then on) so that no change
 * id handed out before — vmbkp's or another backup product's — is accepted afterwards.
 * `config` is the VM's configuration now; the VM is powered off.
 */
export async function voidChangeHistory(session: VsphereSession, vm: VmRef, config: XmlNode | undefined,
  step: (m: string) => void): Promise<void> {
  const marks = [...extraConfigOf(config).keys()].filter((k) => k.startsWith(BACKUP_MARK_PREFIX));
  if (marks.length > 0) {
    step(`removing the backup marks of VM ${vm.name} (${marks.join(', ')})`);
    await setAdvancedSettings(session, vm.ref, Object.fromEntries(marks.map((k) => [k, ''])), `removing the backup marks of VM ${vm.name}`);
  }
  if (boolAt(config, 'changeTrackingEnabled') === true) {
    step(`resetting changed-block tracking on VM ${vm.name}`);
    for (const on of [false, true]) {
      const res = await session.call('ReconfigVM_Task', vm.ref, { spec: { changeTrackingEnabled: on } });
      await waitForTask(session, taskOf(res), { what: `turning changed-block tracking ${on ? 'on' : 'off'} on VM ${vm.name} (resetting it before its disks are overwritten)` });
    }
  }
}
