/**
 * Datastore files over HTTPS (`/folder/PATH?dcPath=DC&dsName=DS`), authenticated by the
 * API session's cookie: ranged reads of a snapshot's flat disk file, and whole-file
 * uploads (PUT) of a new disk's flat file. A read that breaks off is retried a bounded
 * number of times; a dropped session is re-established first. An upload is one stream
 * and cannot be resumed, so the session is checked before it starts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AuthError, InputError, IoError, describeCause } from '../errors.js';
import { type HttpResponse, type HttpUpload, httpRequest, httpUpload } from './http.js';
import { retrieveOne } from './property-collector.js';
import type { VsphereSession } from './session.js';
import { type MoRef, moRefOf, text } from './xml.js';

/** A datastore read that breaks off is tried this often, waiting 200 ms, 400 ms, 800 ms between tries. */
const DEFAULT_READ_ATTEMPTS = 4;
const FIRST_RETRY_DELAY_MS = 200;

export interface DatastorePath {
  readonly datastore: string;
  readonly path: string;
}

export function parseDatastorePath(fileName: string): DatastorePath {
  const m = /^\[([^\]]+)\]\s*(.*)$/.exec(fileName);
  if (!m || !m[2]) throw new InputError(`datastore path ${JSON.stringify(fileName)} is not of the form "[datastore] dir/file"`);
  return { datastore: m[1]!, path: m[2] };
}

/** The data file of a flat (VMFS) disk: "dir/web01.vmdk" → "dir/web01-flat.vmdk". */
export function flatFileOf(descriptorPath: string): string {
  return descriptorPath.replace(/\.vmdk$/i, '-flat.vmdk');
}

/** The inventory path of the datacenter holding `obj` ("DC0", or "folder/DC0"), for dcPath. */
export async function datacenterPathOf(session: VsphereSession, obj: MoRef): Promise<string> {
  let cur: MoRef | undefined = obj;
  const names: string[] = [];
  let inDatacenter = false;
  while (cur && cur.value !== session.content.rootFolder.value) {
    const props = await retrieveOne(session, cur, ['name', 'parent']);
    if (cur.type === 'Datacenter') inDatacenter = true;
    if (inDatacenter) names.unshift(text(props.get('name')));
    cur = moRefOf(props.get('parent'));
  }
  if (!inDatacenter) throw new IoError(`no datacenter holds ${obj.value} on ${session.host}`);
  return names.join('/');
}

export function folderUrl(session: VsphereSession, dcPath: string, file: DatastorePath): URL {
  const url = new URL(session.url);
  url.pathname = `/folder/${file.path.split('/').map(encodeURIComponent).join('/')}`;
  url.search = new URLSearchParams({ dcPath, dsName: file.datastore }).toString();
  return url;
}

export interface RangeReadOptions {
  readonly attempts?: number;
  readonly what: string;
}

/** Reads exactly `length` bytes at `offset` of a datastore file into `into`. */
export async function readDatastoreRange(session: VsphereSession, url: URL, offset: number, length: number, into: Buffer,
  opts: RangeReadOptions): Promise<void> {
  const attempts = opts.attempts ?? DEFAULT_READ_ATTEMPTS;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await httpRequest(session.httpsAgent, {
        method: 'GET', url, into: into.subarray(0, length),
        headers: { range: `bytes=${offset}-${offset + length - 1}`, ...(session.cookie ? { cookie: session.cookie } : {}) },
      });
      if (res.status === 403) throw folderForbidden(session, 'GET', url);
      if (res.status === 401) {
        await session.ensureLoggedIn();
        throw new IoError(`HTTP ${res.status}`);
      }
      if (res.status === 404) throw new InputError(`${opts.what}: ${url.pathname} does not exist on the datastore`);
      if (res.status !== 206 && !(res.status === 200 && offset === 0)) throw new IoError(`HTTP ${res.status}`);
      if (res.body.length !== length) throw new IoError(`got ${res.body.length} of ${length} bytes`);
      return;
    } catch (err) {
      if (err instanceof InputError || err instanceof AuthError) throw err;
      lastError = err;
      if (attempt < attempts) await sleep(FIRST_RETRY_DELAY_MS * 2 ** (attempt - 1));
    }
  }
  throw new IoError(`${opts.what} at offset ${offset} failed after ${attempts} attempts: ${describeCause(lastError)}`, { cause: lastError });
}

/**
 * A 403 from /folder: the user's role lacks what HTTP access to datastore files needs,
 * Datastore.Browse and Datastore.FileManagement on the datastore (vSphere Web Services SDK
 * Programming Guide, "Privilege Requirements for HTTP Access"); the answer does not say which.
 */
export function folderForbidden(session: VsphereSession, method: 'GET' | 'PUT', url: URL): AuthError {
  const ds = url.searchParams.get('dsName') ?? '?';
  return new AuthError(`user ${session.userName} may not ${method === 'GET' ? 'read' : 'write'} ${decodeURIComponent(url.pathname)} on ${session.host}`
    + ` (HTTP 403): datastore file access needs privileges Datastore.Browse and Datastore.FileManagement on datastore ${ds}`);
}

/** Starts replacing a datastore file with `length` bytes written in order through the returned upload. */
export async function openDatastoreUpload(session: VsphereSession, url: URL, length: number): Promise<HttpUpload> {
  // A 401 in the middle of a stream cannot be retried: make sure the session is alive first.
  await session.ensureLoggedIn();
  return httpUpload(session.httpsAgent, {
    url, length,
    headers: { 'content-type': 'application/octet-stream', ...(session.cookie ? { cookie: session.cookie } : {}) },
  });
}

/** The server's reason for a failed transfer: the start of its answer's text, on one line. */
export function answerText(res: HttpResponse): string {
  const text = res.body.toString('utf8').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
