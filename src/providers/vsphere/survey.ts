/** A VM as a dry run sees it: its current disks, CBT, and the vmbkp snapshots a killed run left, by reading only. */
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { disksOf, snapshotsOf, unsnapshottable } from '../../vsphere/vm.js';
import { MoRef, boolAt } from '../../vsphere/xml.js';
import type { MachineSurvey, PlannedDisk } from '../machine-provider.js';
import { SNAPSHOT_PREFIX, setNameForVm } from './backup-vm.js';
import { judgeVmbkpSnapshot, vcenterClock } from './snapshot-orphans.js';

export async function surveyVm(session: VsphereSession, vm: { readonly name: string; readonly id: string },
  opts: { readonly enableCbt: boolean; readonly excludeDisks: readonly number[] }): Promise<MachineSurvey> {
  const props = await retrieveOne(session, new MoRef('VirtualMachine', vm.id), ['config', 'snapshot']);
  const config = props.get('config');
  const cbtOn = boolAt(config, 'changeTrackingEnabled') === true;
  const disks = disksOf(config).map((disk): PlannedDisk => {
    const base = { name: String(disk.key), key: disk.key, label: disk.label, capacity: disk.capacity };
    if (opts.excludeDisks.includes(disk.key)) return { ...base, skipped: 'excluded by the recipe' };
    const skip = unsnapshottable(disk);
    return skip ? { ...base, skipped: skip } : base;
  });
  // Judged as the backup judges them: a live run's snapshot is no orphan.
  const clock = vcenterClock(session);
  const orphans: string[] = [];
  for (const s of snapshotsOf(props.get('snapshot')).filter((x) => x.name.startsWith(SNAPSHOT_PREFIX))) {
    if ((await judgeVmbkpSnapshot(vm.name, s, clock)).orphan) orphans.push(s.name);
  }
  return {
    name: vm.name, id: vm.id, set: setNameForVm(vm.name),
    changeTracking: cbtOn ? 'on' : opts.enableCbt ? 'would be enabled' : 'off',
    orphans,
    disks,
  };
}
