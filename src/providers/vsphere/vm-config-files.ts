/**
 * The VM's `.vmx` and nvram file, saved with each generation (vsphere/vm-files.ts): the
 * nvram holds the firmware's settings (EFI boot entries, Secure Boot keys, vTPM state),
 * which no API property carries, so an EFI VM restored without it may not boot.
 *
 * They are read from the VM's directory right after the backup's snapshot is taken:
 * whatever a snapshot keeps of them lies in its `.vmsn`, a file VMware does not document
 * and no API reads, so this is the nearest moment vSphere allows; the firmware rarely
 * writes, and a write between the two is the only difference.
 */
import { describeCause } from '../../errors.js';
import type { MachineFileData } from '../../repository/machine-files.js';
import { datacenterPathOf } from '../../vsphere/datastore.js';
import type { VmRef } from '../../vsphere/inventory.js';
import { retrieveOne } from '../../vsphere/property-collector.js';
import type { VsphereSession } from '../../vsphere/session.js';
import { configFilesOf, fileNameOf, readDatastoreFile } from '../../vsphere/vm-files.js';

const WHAT: Record<string, string> = { config: 'configuration file', nvram: 'nvram file (firmware settings)' };

/**
 * The VM's configuration files; one that cannot be read is left out with a warning saying
 * what a restore then lacks. A VM never powered on has no nvram (or an empty one): nothing
 * is lost, the firmware writes its defaults at the first power on, as it would after a restore.
 */
export async function readVmConfigFiles(session: VsphereSession, vm: VmRef, warn: (m: string) => void): Promise<MachineFileData[]> {
  const files = configFilesOf((await retrieveOne(session, vm.ref, ['layoutEx'])).get('layoutEx'));
  if (files.length === 0) return [];
  const dcPath = await datacenterPathOf(session, vm.ref);
  const out: MachineFileData[] = [];
  for (const f of files) {
    const what = `reading the ${WHAT[f.role]} ${f.path} of VM ${vm.name}`;
    try {
      const data = await readDatastoreFile(session, dcPath, f.path, what);
      // An empty nvram (a VM never powered on) holds no settings: the firmware writes its defaults at the first power on.
      if (data && (data.length > 0 || f.role !== 'nvram')) out.push({ name: fileNameOf(f.path), role: f.role, data });
      else if (!data) warn(`${what}: the file is gone; this backup does not hold it`);
    } catch (err) {
      const lacks = f.role === 'nvram' ? 'a VM restored from it starts with its firmware\'s default settings' : 'it is kept for reference only';
      warn(`${describeCause(err)}; this backup does not hold it (${lacks})`);
    }
  }
  return out;
}
