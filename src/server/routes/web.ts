/**
 * The dashboard's static files: / is index.html, /assets/... the rest of src/server/web and
 * chart.js's browser build from node_modules. Only files listed at startup are served, looked
 * up by exact path, so no request path can reach outside them (no traversal to normalise).
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerApp, ServerContext } from '../context.js';

/** This module runs as dist/src/server/routes/web.js; the files stay in the source tree. */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../src/server/web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Scripts, styles and connections only from this origin: no inline script or style, no
 * eval, no framing; the charts' canvases are sized through the CSSOM, which CSP allows.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "font-src 'self'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

async function listFiles(dir: string, prefix: string, into: Map<string, string>): Promise<void> {
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) await listFiles(full, `${prefix}${e.name}/`, into);
    else if (e.isFile() && TYPES[path.extname(e.name)]) into.set(`${prefix}${e.name}`, full);
  }
}

/** URL path -> file, built once: the dashboard's files and the vendored browser libraries. */
export async function webFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  await listFiles(WEB_DIR, '/assets/', files);
  const index = files.get('/assets/index.html');
  files.delete('/assets/index.html');
  if (index) files.set('/', index);
  // chart.js's package exports name its ESM and CJS entries; the UMD build sits beside them.
  const chartMain = createRequire(import.meta.url).resolve('chart.js');
  files.set('/assets/vendor/chart.umd.js', path.join(path.dirname(chartMain), 'chart.umd.js'));
  return files;
}

export function register(app: ServerApp, _ctx: ServerContext): void {
  const listing = webFiles();
  const serve = async (urlPath: string): Promise<Response> => {
    const file = (await listing).get(urlPath);
    if (!file) return new Response('not found\n', { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
    const body = await fs.readFile(file);
    return new Response(body, {
      headers: {
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'Content-Security-Policy': CONTENT_SECURITY_POLICY,
        'X-Content-Type-Options': 'nosniff',
        'X-Frame-Options': 'DENY',
        'Referrer-Policy': 'no-referrer',
        // Small files, revalidated each load: an upgraded server never runs a stale dashboard.
        'Cache-Control': 'no-cache',
      },
    });
  };
  app.get('/', () => serve('/'));
  app.get('/assets/*', (c) => serve(c.req.path));
}
