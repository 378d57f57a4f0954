/**
 * A VM as a dry run sees it: its current disks, CBT, the vmbkp snapshots a killed run
 * left, and whether its change data could be trusted (change-trust.ts, on the VM's
 * configuration now), by reading only.
 */
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { disksOf, snapshotsOf, unsnapshottable } from '../../vsphere/vm.js';
import { MoRef, boolAt } from '../../vsphere/xml.js';
import type { MachineSurvey, PlannedDisk, SurveyOptions } from '../machine-provider.js';
import { SNAPSHOT_PREFIX, setNameForVm } from './backup-vm.js';
import { assessChangeTrust } from './change-trust.js';

export async function surveyVm(session: VsphereSession, vm: { readonly name: string; readonly id: string },
  opts: SurveyOptions): Promise<MachineSurvey> {
  const props = await retrieveOne(session, new MoRef('VirtualMachine', vm.id), ['config', 'snapshot']);
  const config = props.get('config');
  const cbtOn = boolAt(config, 'changeTrackingEnabled') === true;
  const set = setNameForVm(vm.name);
  const trust = assessChangeTrust({ vmName: vm.name, set, id: '', config, previous: opts.previous, repositoryId: opts.repositoryId });
  const disks = disksOf(config).map((disk): PlannedDisk => {
    const base = { name: String(disk.key), key: disk.key, label: disk.label, capacity: disk.capacity };
    if (opts.excludeDisks.includes(disk.key)) return { ...base, skipped: 'excluded by the recipe' };
    const skip = unsnapshottable(disk);
    if (skip) return { ...base, skipped: skip };
    const changesVoid = trust.diskVoid(disk);
    return changesVoid !== undefined ? { ...base, changesVoid } : base;
  });
  return {
    name: vm.name, id: vm.id, set,
    changeTracking: cbtOn ? 'on' : opts.enableCbt ? 'would be enabled' : 'off',
    orphans: snapshotsOf(props.get('snapshot')).filter((s) => s.name.startsWith(SNAPSHOT_PREFIX)).map((s) => s.name),
    disks,
  };
}
