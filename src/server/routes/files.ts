/**
 * The file browser: a generation's filesystems, a directory's entries (the CLI's `files list
 * --json` and `files ls --json` shapes) and one regular file's bytes as a download. Each
 * request starts one libguestfs appliance (tens of seconds under TCG). Read-only, so a viewer
 * may use it; a download reads backed-up data, so it goes into the audit log although a GET.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { listGenerationFilesystems, listPath, readGenerationFile } from '../../app/files.js';
import type { ServerApp, ServerContext, ServerEnv } from '../context.js';
import { badRequest } from '../http-error.js';
import { addFilesOpenApi } from '../openapi-files.js';

const BASE = '/api/v1/repositories/:repo/sets/:set/generations/:gen/files';

/** `path`: absolute, and never with a `..` component (normalising it away would hide what was asked). */
function pathParam(c: Context<ServerEnv>, fallback?: string): string {
  const p = c.req.query('path') ?? fallback;
  if (p === undefined || p === '') throw badRequest('path: give the absolute path of a file in the backed-up filesystem (?path=/etc/hosts)');
  if (!p.startsWith('/')) throw badRequest(`path ${JSON.stringify(p)} must be absolute (start with /)`);
  if (p.split('/').includes('..')) throw badRequest(`path ${JSON.stringify(p)} has a .. component: give the path without it`);
  return p;
}

function optional(c: Context<ServerEnv>, name: string): string | undefined {
  const v = c.req.query(name);
  return v === undefined || v === '' ? undefined : v;
}

/** RFC 6266: an ASCII fallback name plus the exact one in UTF-8. */
function disposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_') || 'file';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function register(app: ServerApp, ctx: ServerContext): void {
  addFilesOpenApi();
  const events = (what: string) => ({ onWarning: (m: string) => ctx.log.warn(`${what}: ${m}`) });

  app.get(BASE, async (c) => {
    const [name, set, gen] = [c.req.param('repo'), c.req.param('set'), c.req.param('gen')];
    const disk = optional(c, 'disk');
    const fs = optional(c, 'fs');
    const repo = await ctx.repositories.open(name);
    const target = { repo, set, generation: gen, ...(disk !== undefined ? { disk } : {}) };
    if (fs === undefined) return c.json(await listGenerationFilesystems(target, events(`files of ${name} set ${set}`)));
    const path = pathParam(c, '/');
    return c.json(await listPath({ ...target, fs, path }, events(`files of ${name} set ${set}`)));
  });

  app.get(`${BASE}/content`, async (c) => {
    const [name, set, gen] = [c.req.param('repo'), c.req.param('set'), c.req.param('gen')];
    const disk = optional(c, 'disk');
    const fs = optional(c, 'fs');
    // Set first: a refused or failed download is audited too.
    c.set('auditSummary', `download ${name} set ${set} generation ${gen}${disk !== undefined ? ` disk ${disk}` : ''}${fs !== undefined ? ` filesystem ${fs}` : ''} path ${c.req.query('path') ?? '(none)'}`);
    const path = pathParam(c);
    const repo = await ctx.repositories.open(name);
    const got = await readGenerationFile({ repo, set, generation: gen, path, ...(disk !== undefined ? { disk } : {}), ...(fs !== undefined ? { fs } : {}) },
      events(`download from ${name} set ${set}`));
    c.set('auditSummary', `download ${name} set ${got.set} generation ${got.generation} disk ${got.disk} filesystem ${got.fs} path ${got.path} (${got.size} bytes)`);
    ctx.log.info(`user ${c.get('principal').user} downloaded ${got.path} (${got.size} bytes) from ${name} set ${got.set} generation ${got.generation} disk ${got.disk} filesystem ${got.fs}`);
    const stream = createReadStream(got.hostFile);
    // The copy goes once the stream ends, fails or the client goes away.
    stream.once('close', () => { void got.remove(); });
    return new Response(Readable.toWeb(stream) as ReadableStream, {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream', 'content-length': String(got.size), 'content-disposition': disposition(got.name),
        'last-modified': new Date(got.mtime).toUTCString(),
      },
    });
  });
}
