/** Shared test helpers: temporary directories, the real CLI as a child process, disk images. */
import { type SpawnOptions, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin/vmbkp.js');
export const DISK_IMAGE = path.resolve(ROOT, '../shared/bench/disk-image.mjs');

export async function tempDir(prefix = 'vmbkp-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the vmbkp CLI; never throws on a non-zero exit. */
export function vmbkp(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts);
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { env: { ...process.env, CI: 'true', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) };
    const child = spawn(cmd, args, spawnOpts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** Runs the CLI and expects success; returns parsed --json output. */
export async function vmbkpJson<T = unknown>(args: string[], env?: NodeJS.ProcessEnv): Promise<T> {
  const r = await vmbkp([...args, '--json'], env ? { env } : {});
  if (r.code !== 0) throw new Error(`vmbkp ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const execFileP = promisify(execFile);

/** Makes a deterministic image with the shared generator. */
export async function makeImage(out: string, size: string, seed: number): Promise<void> {
  await execFileP(process.execPath, [DISK_IMAGE, 'make', '--out', out, '--size', size, '--seed', String(seed)]);
}

/** Makes the next generation of an image and its CBT-shaped changed extents. */
export async function mutateImage(input: string, out: string, extents: string, change: number, seed: number): Promise<void> {
  await execFileP(process.execPath, [DISK_IMAGE, 'mutate', '--in', input, '--out', out, '--change', String(change), '--seed', String(seed), '--extents', extents]);
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Every file under a directory with its sha256, to show a repository was not changed. */
export async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), await sha256File(p));
    }
  };
  await walk(dir);
  return out;
}

/** Total bytes of the files under a directory. */
export async function treeSize(dir: string): Promise<number> {
  let n = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else n += (await fs.stat(p)).size;
    }
  };
  await walk(dir);
  return n;
}

/** stderr is one line: the error, naming what failed. */
export function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected a one-line error, got:\n${stderr}`);
  return lines[0]!;
}
