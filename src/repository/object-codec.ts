/**
 * Metadata objects (index files, generation manifests, pack tables, locks) pass through an
 * ObjectCodec on their way to and from storage, as blobs pass through the BlobCodec. A
 * plaintext repository stores them as they are; an encrypted one seals each with the data
 * key, the associated data naming what the object is (its name, or its kind for objects
 * named by their content), so that an object moved to another name does not open.
 */
import { RepositoryDamagedError } from '../errors.js';
import { objectAd, open, seal } from './encryption.js';

export interface ObjectCodec {
  /** True when objects are encrypted and authenticated. */
  readonly sealed: boolean;
  /** The stored form of a metadata object; `what` is its name, or its kind when it is named by its content. */
  seal(what: string, plain: Buffer): Buffer;
  /**
   * The plain form of a stored object sealed for `what`; throws RepositoryDamagedError
   * naming `name` (the object, for messages) when it does not open.
   */
  open(name: string, what: string, stored: Buffer): Buffer;
}

export const PLAIN_OBJECTS: ObjectCodec = {
  sealed: false,
  seal: (_what, plain) => plain,
  open: (_name, _what, stored) => stored,
};

export function sealedObjects(dataKey: Buffer): ObjectCodec {
  return {
    sealed: true,
    seal: (what, plain) => seal(dataKey, objectAd(what), plain),
    open: (name, what, stored) => {
      try {
        return open(dataKey, objectAd(what), stored);
      } catch (err) {
        throw new RepositoryDamagedError(`reading ${name} failed: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}
