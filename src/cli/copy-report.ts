/** How a copy's report reads: one line (`vmbkp copy`, and the copy part of a recipe's summary). */
import type { CopyReport } from '../app/copy.js';
import { bytes } from './format.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** "copied 3 generations of 2 sets (5 skipped, already there): 812 MiB read, 120 MiB sent". */
export function copySummary(r: CopyReport): string {
  if (r.dryRun) {
    const planned = r.generations.filter((g) => g.status === 'planned');
    const sets = new Set(planned.map((g) => g.set)).size;
    return [
      ...planned.map((g) => `would copy set ${g.set} generation ${g.from} as generation ${g.to}: ${plural(g.chunksSent, 'chunk')}, ${bytes(g.bytesSent)}`),
      `dry run: would copy ${plural(planned.length, 'generation')} of ${plural(sets, 'set')} (${r.present} skipped, already there), `
        + `sending ${r.predicted === 'at most' ? 'at most ' : ''}${plural(r.chunksSent, 'chunk')} and ${bytes(r.bytesSent)}; no chunk was read and nothing written`,
    ].join('\n');
  }
  const sets = new Set(r.generations.filter((g) => g.status === 'copied').map((g) => g.set)).size;
  return `copied ${plural(r.copied, 'generation')} of ${plural(sets, 'set')} (${r.present} skipped, already there): `
    + `${bytes(r.bytesRead)} read, ${bytes(r.bytesSent)} sent`;
}
