/**
 * The OpenAPI 3.1 entries of the resource endpoints (paths relative to /api/v1: repositories, sets and generations,
 * exports, preview) and the bodies of the resource job kinds; openapi.ts merges them into
 * the document. Shapes are those of the CLI's --json output, named after the command.
 */
import { addOpenApi } from './openapi.js';

const json = (schema: object, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = { description: 'an error: { error: { code, message } }', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
const repoParam = { name: 'repo', in: 'path', required: true, schema: { type: 'string' }, description: 'a repository name of the server config' };
const setParam = { name: 'set', in: 'path', required: true, schema: { type: 'string' } };
const generationRef = { oneOf: [{ type: 'string' }, { type: 'integer', minimum: 1 }], default: 'latest', description: 'a number, latest, latest~N, a date or date-time, or an id prefix (as --generation)' };
const obj = (properties: Record<string, object>, required: string[] = [], extra = false) => ({ type: 'object', properties, required, additionalProperties: extra });

export const resourceSchemas: Record<string, object> = {
  RepositorySummary: obj({
    name: { type: 'string' }, location: { type: 'string' },
    storedBytes: { type: ['integer', 'null'], description: 'size on disk of every object' },
    dedupRatio: { type: ['number', 'null'], description: 'logical size / unique data' },
    error: { oneOf: [{ type: 'null' }, ref('ErrorRecord')], description: 'why the repository could not be read' },
  }, ['name', 'location', 'storedBytes', 'dedupRatio', 'error']),
  ErrorRecord: obj({ code: { type: 'string' }, message: { type: 'string' } }, ['code', 'message']),
  RepositoryStatus: { type: 'object', description: 'vmbkp status --json: repository, storage, data, logicalBytes, dedupRatio, compressionRatio, sets, generations, verify, gc, locks', additionalProperties: true },
  UsageSample: obj({ time: { type: 'string', format: 'date-time' }, storedBytes: { type: 'integer' }, logicalBytes: { type: ['integer', 'null'] } }, ['time', 'storedBytes']),
  GenerationSummary: { type: 'object', description: 'a generation as vmbkp list --json shows it: set, generation, id, started, finished, mode, consistency?, machine?, savedFiles?, disks[] (name, size, mode, source, bytesRead, bytesStored, durationMs, chunks, …)', additionalProperties: true },
  SetListing: obj({
    repository: { type: 'string' },
    sets: { type: 'array', items: obj({ name: { type: 'string' }, generations: { type: 'array', items: ref('GenerationSummary') } }, ['name', 'generations']) },
  }, ['repository', 'sets']),
  GenerationFigures: {
    allOf: [ref('GenerationSummary'), obj({
      totals: obj({ size: { type: 'integer' }, bytesRead: { type: 'integer' }, bytesStored: { type: 'integer' }, durationMs: { type: 'integer' } }),
      bytesRead: { type: 'integer' }, bytesStored: { type: 'integer' }, durationMs: { type: 'integer' },
      verify: obj({
        status: { enum: ['ok', 'failed', 'unverified'], description: 'unverified: no verify recorded, or the generation finished after the last one' },
        time: { type: ['string', 'null'], format: 'date-time' },
      }, ['status', 'time']),
    }, ['bytesRead', 'bytesStored', 'durationMs', 'verify'], true)],
  },
  GenerationDetails: { type: 'object', description: 'vmbkp show --set S --generation G --json: the generation summary, totals, machineDetails?, warnings[]', additionalProperties: true },
  Export: obj({
    id: { type: 'string' }, uri: { type: 'string', description: 'nbd+unix:///DISK?socket=PATH or nbd://127.0.0.1:PORT/DISK' },
    repository: { type: 'string' }, set: { type: 'string' }, generation: { type: 'integer' }, disk: { type: 'string' }, size: { type: 'integer' },
    startedAt: { type: 'string', format: 'date-time' }, user: { type: ['string', 'null'] }, bytesRead: { type: 'integer' },
  }, ['id', 'uri', 'repository', 'set', 'generation', 'disk', 'size', 'startedAt', 'user', 'bytesRead']),
  ExportRequest: obj({
    repository: { type: 'string' }, set: { type: 'string' }, generation: generationRef, disk: { type: 'string' },
    listen: { enum: ['unix', 'tcp'], default: 'unix', description: 'unix: a socket in a private directory; tcp: 127.0.0.1 on a free port' },
  }, ['repository', 'set', 'disk']),
  VerifyJob: obj({ kind: { const: 'verify' }, repository: { type: 'string' }, readData: { type: 'boolean', default: false } }, ['kind', 'repository']),
  PruneJob: obj({
    kind: { const: 'prune' }, repository: { type: 'string' }, dryRun: { type: 'boolean' },
    set: { type: 'string', description: 'one set (needs keep); without it every set, each by keep, recipe or the repository profile\'s retention in the vmbkp config' },
    keep: obj({ last: { type: 'integer', minimum: 1 }, daily: { type: 'integer' }, weekly: { type: 'integer' }, monthly: { type: 'integer' } }, ['last']),
    recipe: { type: 'string', description: 'a backup recipe file whose policy.retention applies to the sets of its VMs' },
    gc: { type: 'boolean', default: true },
  }, ['kind', 'repository', 'dryRun']),
  RestoreDiskJob: obj({
    kind: { const: 'restore-disk' }, repository: { type: 'string' }, set: { type: 'string' }, generation: generationRef, disk: { type: 'string' },
    to: { type: 'string', description: 'an absolute path on the server host; must not exist unless overwrite' },
    format: { enum: ['raw', 'qcow2'], default: 'raw' }, overwrite: { type: 'boolean', default: false },
  }, ['kind', 'repository', 'set', 'disk', 'to']),
  RestoreVmJob: obj({
    kind: { const: 'restore-vm' }, repository: { type: 'string' }, set: { type: 'string' }, generation: generationRef,
    vcenter: { type: 'string', description: 'a vCenter profile of the vmbkp config file the server config names' }, name: { type: 'string' },
    host: { type: 'string' }, datastore: { type: 'string' }, folder: { type: 'string' }, resourcePool: { type: 'string' },
    network: { type: 'object', additionalProperties: { type: 'string' }, description: 'old network name → new' },
    powerOn: { type: 'boolean' }, keepIdentity: { type: 'boolean' }, overwrite: { type: 'boolean' },
    transport: { enum: ['https', 'nfc', 'vddk'], default: 'https' }, vddkLibdir: { type: 'string' }, vddkTransports: { type: 'string' },
    disksAtOnce: { type: 'integer', minimum: 1, default: 1 },
  }, ['kind', 'repository', 'set', 'vcenter', 'name']),
};

export const resourcePaths: Record<string, object> = {
  '/repositories': { get: { summary: 'repositories of the server config, with size and dedup ratio', responses: { 200: json({ type: 'array', items: ref('RepositorySummary') }), 401: error } } },
  '/repositories/{repo}': { get: { summary: 'vmbkp status --json', parameters: [repoParam], responses: { 200: json(ref('RepositoryStatus')), 401: error, 404: error } } },
  '/repositories/{repo}/growth': { get: { summary: 'size samples, recorded after each job, oldest first', parameters: [repoParam], responses: { 200: json({ type: 'array', items: ref('UsageSample') }), 401: error, 404: error } } },
  '/repositories/{repo}/sets': { get: { summary: 'vmbkp list --json', parameters: [repoParam], responses: { 200: json(ref('SetListing')), 401: error, 404: error } } },
  '/repositories/{repo}/sets/{set}/generations': { get: { summary: "a set's generations with their figures and verify status", parameters: [repoParam, setParam], responses: { 200: json({ type: 'array', items: ref('GenerationFigures') }), 401: error, 404: error } } },
  '/repositories/{repo}/sets/{set}/generations/{gen}': {
    get: { summary: 'vmbkp show --json', parameters: [repoParam, setParam, { name: 'gen', in: 'path', required: true, schema: { type: 'string' } }], responses: { 200: json(ref('GenerationDetails')), 401: error, 404: error } },
  },
  '/exports': {
    get: { summary: 'NBD exports the server keeps', responses: { 200: json({ type: 'array', items: ref('Export') }), 401: error } },
    post: {
      summary: 'serve a disk of a generation as a read-only NBD export (operator)',
      requestBody: { required: true, content: { 'application/json': { schema: ref('ExportRequest') } } },
      responses: { 201: json(ref('Export'), 'the export, listening'), 400: error, 401: error, 403: error, 404: error, 409: error },
    },
  },
  '/exports/{id}': {
    delete: { summary: 'stop an export (operator)', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { 200: json(ref('Export')), 401: error, 403: error, 404: error } },
  },
  '/preview': {
    post: {
      summary: 'what a restore or prune would do (the CLI\'s --dry-run JSON); changes nothing (operator)',
      requestBody: { required: true, content: { 'application/json': { schema: { oneOf: [ref('RestoreDiskJob'), ref('RestoreVmJob'), ref('PruneJob')] } } } },
      responses: { 200: json({ type: 'object', additionalProperties: true }), 400: error, 401: error, 403: error, 404: error },
    },
  },
};


let added = false;

/** Adds the entries above to the document, once (each app built adds its routes; the document is one). */
export function addResourceOpenApi(): void {
  if (added) return;
  added = true;
  addOpenApi(resourcePaths, resourceSchemas);
}
