/**
 * A VM as a dry run sees it, by reading only: its current disks, CBT (and whether
 * --enable-cbt could turn it on), the vmbkp snapshots a killed run left, whether its
 * disks need consolidating first, and whether its change data could be trusted
 * (change-trust.ts, on the VM's configuration now).
 */
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { disksOf, snapshotsOf, unsnapshottable } from '../../vsphere/vm.js';
import { MoRef, boolAt } from '../../vsphere/xml.js';
import type { MachineSurvey, PlannedDisk, SurveyOptions } from '../machine-provider.js';
import { SNAPSHOT_PREFIX, setNameForVm } from './backup-vm.js';
import { cannotEnableWhy, userSnapshots } from './change-tracking.js';
import { assessChangeTrust } from './change-trust.js';
import { judgeVmbkpSnapshot, vcenterClock } from './snapshot-orphans.js';

export async function surveyVm(session: VsphereSession, vm: { readonly name: string; readonly id: string },
  opts: SurveyOptions): Promise<MachineSurvey> {
  const props = await retrieveOne(session, new MoRef('VirtualMachine', vm.id), ['config', 'snapshot', 'runtime']);
  const config = props.get('config');
  const cbtOn = boolAt(config, 'changeTrackingEnabled') === true;
  const set = setNameForVm(vm.name);
  const trust = assessChangeTrust({ vmName: vm.name, set, id: '', config, previous: opts.previous, repositoryId: opts.repositoryId });
  const notes: string[] = [];
  const cbtRefused = !cbtOn && opts.enableCbt ? cannotEnableWhy(vm.name, userSnapshots(props.get('snapshot'))) : undefined;
  if (cbtRefused) notes.push(`changed-block tracking would not be enabled: ${cbtRefused}; a later run enables it once the VM has none`);
  if (boolAt(props.get('runtime'), 'consolidationNeeded') === true) {
    notes.push('would first consolidate the disks (a snapshot removal left delta disks that no snapshot uses)');
  }
  const disks = disksOf(config).map((disk): PlannedDisk => {
    const base = { name: String(disk.key), key: disk.key, label: disk.label, capacity: disk.capacity };
    if (opts.excludeDisks.includes(disk.key)) return { ...base, skipped: 'excluded by the recipe' };
    const skip = unsnapshottable(disk);
    if (skip) return { ...base, skipped: skip };
    const changesVoid = trust.diskVoid(disk);
    return changesVoid !== undefined ? { ...base, changesVoid } : base;
  });
  // Judged as the backup judges them: a live run's snapshot is no orphan.
  const clock = vcenterClock(session);
  const orphans: string[] = [];
  for (const s of snapshotsOf(props.get('snapshot')).filter((x) => x.name.startsWith(SNAPSHOT_PREFIX))) {
    if ((await judgeVmbkpSnapshot(vm.name, s, clock)).orphan) orphans.push(s.name);
  }
  return {
    name: vm.name, id: vm.id, set,
    changeTracking: cbtOn ? 'on' : opts.enableCbt && !cbtRefused ? 'would be enabled' : 'off',
    orphans,
    disks, ...(notes.length > 0 ? { notes } : {}),
  };
}
