/**
 * StorageBackend: where a repository's objects live. Names are relative, slash-separated
 * paths ("data/ab/ab12…", "locks/…"). Objects are write-once: `put` never replaces an
 * existing object, and a reader never sees a partly written one.
 *
 * Retry, rate limiting and caching wrap a backend; they do not live in it.
 */
export interface ObjectStat {
  readonly size: number;
  readonly mtimeMs: number;
  /** Until when the store refuses to delete it (an object lock), if it does. */
  readonly lockedUntilMs?: number;
}

/**
 * Object lock: every object written (but locks, which come and go) cannot be deleted or
 * changed by anyone until `days` after it was written; in `governance` mode a user with the
 * bypass permission still can, in `compliance` mode nobody can.
 */
export interface ObjectLockPolicy {
  readonly mode: 'governance' | 'compliance';
  readonly days: number;
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * Age after which a leftover of an interrupted put is removed whoever wrote it (what
 * `sweep` is given by gc): no put takes this long, and the writer may be on another host.
 */
export const ABANDONED_UPLOAD_AGE_MS = 24 * 3600_000;

/** What a backend did besides its requests, for the job's report. */
export interface StorageCounters {
  /** Requests tried again after throttling, a server error or a broken connection. */
  readonly retries: number;
  readonly retriesByCause: Readonly<Record<string, number>>;
}

/** What a caller may tell about an object it puts. */
export interface PutOptions {
  /**
   * The SHA-256 of the whole content, hex, when the caller knows it (a content-addressed
   * object's id): a backend that must hash what it sends (S3's signed payload) takes it
   * instead, and the server checks it against what arrives.
   */
  readonly sha256?: string;
}

/** An object of a listing with its size in bytes. */
export interface ListedObject {
  readonly name: string;
  readonly size: number;
}

export interface StorageBackend {
  /** Human-readable location, for messages. */
  readonly location: string;
  /**
   * Writes an object atomically and durably. Throws AlreadyExistsError if the name exists.
   * `data` must stay unchanged until the put settles: a backend may send it as it is.
   */
  put(name: string, data: Uint8Array | readonly Uint8Array[], options?: PutOptions): Promise<void>;
  /**
   * Reads a whole object or a range of it. With `into` (at least range.length long) the
   * range is read into that buffer, sparing an allocation. Throws NotFoundError if
   * missing; a short range is an IoError.
   */
  get(name: string, range?: ByteRange, into?: Buffer): Promise<Buffer>;
  /** Size and time of an object, or undefined when it does not exist. */
  stat(name: string): Promise<ObjectStat | undefined>;
  /**
   * Every object name in a folder and its subfolders ("data/" lists all packs), in no
   * particular order. The prefix is a folder, "/" at its end or not: "data/0" does not list
   * "data/00/x", and the name of an object lists nothing.
   */
  list(prefix: string): Promise<string[]>;
  /**
   * The same listing with each object's size, where the store gives sizes with a listing
   * (S3's ListObjectsV2 does) or a stat is cheap (a local directory): `vmbkp status` sums a
   * repository without a request per object. Without it, listObjectSizes stats each name.
   */
  listSizes?(prefix: string): Promise<ListedObject[]>;
  /** Removes an object; removing a missing object is not an error. */
  remove(name: string): Promise<void>;
  /** Removes leftovers of interrupted puts: those of processes that are gone, and any older than the given age. Returns how many. */
  sweep(olderThanMs: number): Promise<number>;
  /** Pack uploads worth having in flight at once: a remote store hides its latency behind several (default 2). */
  readonly putsInFlight?: number;
  /** Locks what is written from now on (object storage with object lock only). */
  lockObjects?(policy: ObjectLockPolicy): void;
  /** Throws AuthError naming the permission when these credentials may not delete (an append-only user). */
  checkDeletable?(): Promise<void>;
  /** Counters of a remote backend (retries); a local one has none. */
  counters?(): StorageCounters;
  /** Closes connections, so the process can exit; the backend is not used afterwards. */
  destroy?(): void;
}

const NAME = /^(?:[A-Za-z0-9_][A-Za-z0-9._-]*\/)*[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Object names are plain relative paths: no "..", no leading dot, no empty parts. */
export function checkObjectName(name: string): void {
  if (!NAME.test(name) || name.length > 512) throw new TypeError(`invalid object name: ${JSON.stringify(name)}`);
}

/** Every object under a folder with its size: the backend's own sized listing, else a stat per object (gone meanwhile: left out). */
export async function listObjectSizes(backend: StorageBackend, prefix: string): Promise<ListedObject[]> {
  if (backend.listSizes) return backend.listSizes(prefix);
  const out: ListedObject[] = [];
  for (const name of await backend.list(prefix)) {
    const st = await backend.stat(name);
    if (st) out.push({ name, size: st.size });
  }
  return out;
}
