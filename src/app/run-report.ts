/** What running either kind of recipe shares: the report file, and the error a run ends with. */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IoError, PartialFailureError, describeCause } from '../errors.js';

/** Written beside its final name and renamed, so a reader never sees half a report. */
export async function writeReport(file: string, report: unknown): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, JSON.stringify(report, null, 2) + '\n');
    await rename(tmp, file);
  } catch (err) {
    throw new IoError(`writing the run report ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}

/**
 * The error a run ends with when not everything succeeded: exit 1 when nothing did, 3
 * (partial) when some did. `failed` names each failure with its cause.
 */
export function runFailure(recipePath: string, total: number, failed: readonly { name: string; cause: string }[], noun: string, verb = 'failed'): Error {
  const what = `${failed.length} of ${total} ${noun} ${verb}: ${failed.map((f) => `${f.name} (${f.cause})`).join('; ')}`;
  return failed.length === total ? new IoError(`recipe ${recipePath}: ${what}`) : new PartialFailureError(`recipe ${recipePath}: ${what}`);
}
