/**
 * Write-once for objects named by their content (packs, index files). Nothing but prune
 * and gc ever removes or replaces an object: on object storage with retention locks a
 * replace is impossible, and locally a remove-then-put leaves a window without the object.
 */
import { AlreadyExistsError, RepositoryDamagedError } from '../errors.js';
import type { StorageBackend } from '../storage/backend.js';
import { sha256 } from './digest.js';

/**
 * Puts `parts` under `name`, whose content must hash to `idHex`. An existing object of that
 * name with the same content is the same object (an interrupted run wrote it): fine. One
 * with other content is damage; it is left as it is and the put fails, naming both.
 */
export async function putContentAddressed(backend: StorageBackend, name: string, idHex: string, parts: Uint8Array | readonly Uint8Array[]): Promise<void> {
  try {
    await backend.put(name, parts, { sha256: idHex });
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const existing = sha256(await backend.get(name)).toString('hex');
    if (existing === idHex) return;
    throw new RepositoryDamagedError(`storing ${name} in ${backend.location} refused: an object of that name exists with other content `
      + `(SHA-256 ${existing}, the new one is ${idHex}); it is kept as it is: run vmbkp verify`, { cause: err });
  }
}
