/**
 * A VM's configuration files on its datastore: the `.vmx` and the nvram file (the BIOS or
 * UEFI settings: EFI variables, boot order), as `layoutEx.file` lists them (types `config`
 * and `nvram`), read and written whole through `/folder`. The VDDK programming guide
 * ("Restoring the Virtual BIOS or UEFI") has backups save the .nvram and restores
 * overwrite the VM's with the saved copy.
 */
import { AuthError, IoError, describeCause } from '../errors.js';
import { answerText, folderForbidden, folderUrl, parseDatastorePath } from './datastore.js';
import { httpRequest } from './http.js';
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import { type MoRef, TypedText, type XmlNode, children, textAt } from './xml.js';

export type VmFileRole = 'config' | 'nvram';

/** The VM's configuration files as `layoutEx` names them: `[ds] dir/web01.vmx` (config), `[ds] dir/web01.nvram` (nvram). */
export function configFilesOf(layoutEx: XmlNode | undefined): { readonly path: string; readonly role: VmFileRole }[] {
  return children(layoutEx, 'file').flatMap((f) => {
    const type = textAt(f, 'type');
    const path = textAt(f, 'name') ?? '';
    return (type === 'config' || type === 'nvram') && path !== '' ? [{ path, role: type }] : [];
  });
}

/** The last component of a datastore path: `[ds] dir/web01.nvram` → `web01.nvram`. */
export function fileNameOf(dsPath: string): string {
  return parseDatastorePath(dsPath).path.split('/').pop() ?? '';
}

/** A 403 is the missing-privilege error every `/folder` access gives (datastore.ts). */
function refused(session: VsphereSession, method: 'GET' | 'PUT', url: URL, status: number, what: string, body: string): AuthError | IoError {
  if (status === 403) return folderForbidden(session, method, url);
  const cause = `HTTP ${status}${body ? `: ${body}` : ''}`;
  return status === 401 ? new AuthError(`${what} failed: ${cause}`) : new IoError(`${what} failed: ${cause}`);
}

/** A datastore file's whole content; undefined when there is no such file. A dropped session is re-established once. */
export async function readDatastoreFile(session: VsphereSession, dcPath: string, dsPath: string, what: string): Promise<Buffer | undefined> {
  const url = folderUrl(session, dcPath, parseDatastorePath(dsPath));
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await httpRequest(session.httpsAgent, { method: 'GET', url, headers: session.cookie ? { cookie: session.cookie } : {} });
    } catch (err) {
      throw new IoError(`${what} failed: ${describeCause(err)}`, { cause: err });
    }
    if (res.status === 200) return res.body;
    if (res.status === 404) return undefined;
    if (res.status === 401 && attempt === 1) {
      await session.ensureLoggedIn();
      continue;
    }
    throw refused(session, 'GET', url, res.status, what, answerText(res));
  }
}

/** Replaces (or creates) a datastore file with `data`. The session is checked first: a PUT is not retried. */
export async function writeDatastoreFile(session: VsphereSession, dcPath: string, dsPath: string, data: Buffer, what: string): Promise<void> {
  await session.ensureLoggedIn();
  const url = folderUrl(session, dcPath, parseDatastorePath(dsPath));
  let res;
  try {
    res = await httpRequest(session.httpsAgent, {
      method: 'PUT', url, body: data,
      headers: { 'content-type': 'application/octet-stream', ...(session.cookie ? { cookie: session.cookie } : {}) },
    });
  } catch (err) {
    throw new IoError(`${what} failed: ${describeCause(err)}`, { cause: err });
  }
  if (res.status !== 200 && res.status !== 201) throw refused(session, 'PUT', url, res.status, what, answerText(res));
}

/** Points the VM's configuration at its nvram file (`nvram`, a name in the VM's directory). */
export async function setNvramFile(session: VsphereSession, vm: MoRef, fileName: string, what: string): Promise<void> {
  const res = await session.call('ReconfigVM_Task', vm, {
    spec: { extraConfig: [{ key: 'nvram', value: new TypedText('xsd:string', fileName) }] },
  });
  await waitForTask(session, taskOf(res), { what });
}
