/**
 * Metadata objects (index files, generation manifests) pass through an ObjectCodec on their
 * way to and from storage, as blobs pass through the BlobCodec: the one place an encrypted
 * repository will seal and open them. Today's repositories store them as they are.
 */
export interface ObjectCodec {
  /** The stored form of a metadata object about to be written under `name`. */
  seal(name: string, plain: Buffer): Buffer;
  /** The plain form of a stored metadata object read from `name`; throws RepositoryDamagedError when it does not open. */
  open(name: string, stored: Buffer): Buffer;
}

export const PLAIN_OBJECTS: ObjectCodec = {
  seal: (_name, plain) => plain,
  open: (_name, stored) => stored,
};
