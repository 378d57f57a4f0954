/** The OpenAPI 3.1 entries of the file browser (routes/files.ts); merged into the document once. */
import { addOpenApi } from './openapi.js';

const json = (schema: object, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = { description: 'an error: { error: { code, message } }', content: { 'application/json': { schema: ref('Error') } } };
const obj = (properties: Record<string, object>, required: string[]) => ({ type: 'object', properties, required, additionalProperties: false });
const str = { type: 'string' };
const int = { type: 'integer' };

const params = [
  { name: 'repo', in: 'path', required: true, schema: str, description: 'a repository name of the server config' },
  { name: 'set', in: 'path', required: true, schema: str },
  { name: 'gen', in: 'path', required: true, schema: str, description: 'a number, latest, latest~N, a date or date-time, or an id prefix (as --generation)' },
  { name: 'disk', in: 'query', schema: str, description: 'the disk (needed when the generation has several)' },
];
const fsParam = (what: string) => ({ name: 'fs', in: 'query', schema: str, description: what });
const pathParam = (what: string, required: boolean) => ({ name: 'path', in: 'query', required, schema: str, description: `${what}; absolute, no .. component (400)` });

const schemas: Record<string, object> = {
  FilesList: obj({
    set: str, generation: int, bytesRead: int,
    filesystems: { type: 'array', items: obj({ disk: str, name: str, device: str, type: str, size: int, label: { type: ['string', 'null'] } }, ['disk', 'name', 'device', 'type', 'size', 'label']) },
  }, ['set', 'generation', 'filesystems', 'bytesRead']),
  FilesLs: obj({
    set: str, generation: int, disk: str, fs: str, path: str, bytesRead: int,
    entries: { type: 'array', items: obj({
      name: str, type: { enum: ['file', 'directory', 'symlink', 'other'] }, mode: int, uid: int, gid: int, size: int,
      mtime: { type: 'string', format: 'date-time' }, target: { type: 'string', description: 'a symlink\'s text' },
    }, ['name', 'type', 'mode', 'uid', 'gid', 'size', 'mtime']) },
  }, ['set', 'generation', 'disk', 'fs', 'path', 'entries', 'bytesRead']),
};

const paths = {
  '/repositories/{repo}/sets/{set}/generations/{gen}/files': {
    get: {
      summary: 'without fs: the filesystems of the generation\'s disks (vmbkp files list --json); with fs: a directory\'s entries, or a file\'s one entry (vmbkp files ls --json). Starts a libguestfs appliance (viewer)',
      parameters: [...params, fsParam('a filesystem name from the listing (sda1, vg/lv)'), pathParam('the directory to list (default /)', false)],
      responses: { 200: json({ oneOf: [ref('FilesList'), ref('FilesLs')] }), 400: error, 401: error, 404: error, 422: error },
    },
  },
  '/repositories/{repo}/sets/{set}/generations/{gen}/files/content': {
    get: {
      summary: 'one regular file\'s bytes as a download (Content-Disposition: attachment); a directory or symlink is 400. Recorded in the audit log (viewer)',
      parameters: [...params, fsParam('the filesystem (needed when the disk has several)'), pathParam('the file', true)],
      responses: { 200: { description: 'the file\'s bytes', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, 400: error, 401: error, 404: error, 422: error },
    },
  },
};

let added = false;

export function addFilesOpenApi(): void {
  if (added) return;
  added = true;
  addOpenApi(paths, schemas);
}
