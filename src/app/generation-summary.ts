/** How generations are shown: the manifest without its index piece digests. */
import type { GenerationManifest } from '../repository/generation.js';

/** A generation as list and backup print it: everything but the index piece digests. */
export function generationSummary(m: GenerationManifest) {
  return {
    set: m.set,
    generation: m.generation,
    id: m.id,
    started: m.started,
    finished: m.finished,
    mode: m.mode,
    disks: m.disks.map((d) => ({
      name: d.name, size: d.size, mode: d.mode, source: d.source,
      ...(d.note ? { note: d.note } : {}),
      ...(d.cbtMissedBytes !== undefined ? { cbtMissedBytes: d.cbtMissedBytes } : {}),
      bytesRead: d.stats.bytesRead, bytesStored: d.stats.bytesStored, durationMs: d.stats.durationMs,
      chunks: d.stats.chunks, chunksZero: d.stats.chunksZero, chunksStored: d.stats.chunksStored,
    })),
  };
}

