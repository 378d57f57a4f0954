/** How generations are shown: the manifest without its index piece digests. */
import { diskNames } from '../providers/disk-names.js';
import { machineSummary } from '../providers/machine-summary.js';
import type { GenerationManifest } from '../repository/generation.js';

/** A generation as list and backup print it: everything but the index piece digests. */
export function generationSummary(m: GenerationManifest) {
  const machine = machineSummary(m.machine);
  const names = diskNames(m);
  return {
    set: m.set,
    generation: m.generation,
    id: m.id,
    started: m.started,
    finished: m.finished,
    mode: m.mode,
    // A VM backup's consistency (crash, quiesced, powered-off) and the machine it was made of; absent for older generations and plain disks.
    ...(machine?.consistency ? { consistency: machine.consistency } : {}),
    ...(machine ? { machine: machine.machine } : {}),
    // The machine's files saved beside its disks (a VM's .vmx and nvram: roles config, nvram).
    ...(machine?.savedFiles ? { savedFiles: machine.savedFiles } : {}),
    disks: m.disks.map((d, i) => ({
      name: d.name,
      // What vSphere calls a VM disk ("Hard disk 1") and where it sits ("scsi0:0"): --disk takes either.
      ...(names[i]?.label !== undefined ? { label: names[i].label } : {}),
      ...(names[i]?.bus !== undefined ? { bus: names[i].bus } : {}),
      size: d.size, mode: d.mode, source: d.source,
      ...(d.note ? { note: d.note } : {}),
      ...(d.cbtMissedBytes !== undefined ? { cbtMissedBytes: d.cbtMissedBytes } : {}),
      bytesRead: d.stats.bytesRead, bytesStored: d.stats.bytesStored, durationMs: d.stats.durationMs,
      chunks: d.stats.chunks, chunksZero: d.stats.chunksZero, chunksStored: d.stats.chunksStored,
    })),
  };
}

