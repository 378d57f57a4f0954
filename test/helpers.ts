/** Shared test helpers: temporary directories, the real CLI as a child process, disk images. */
import { type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as DiskImage from '../bench/disk-image.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin/vmbkp.js');
/** The project's disk image generator (also a command: `node bench/disk-image.mjs make …`). */
export const DISK_IMAGE = path.join(ROOT, 'bench/disk-image.mjs');

/**
 * Repositories the tests create are encrypted, as users' are by default: every vmbkp the
 * tests start finds the password here. A cheap key derivation (1 MiB) keeps hundreds of
 * opens fast; the default's cost is measured by the benchmark. Tests of the plaintext
 * format pass `--encryption none`.
 */
export const REPO_PASSWORD_FILE = path.join(ROOT, 'test/fixtures/repository-password');
process.env['VMBKP_REPO_PASSWORD_FILE'] ??= REPO_PASSWORD_FILE;
process.env['VMBKP_KDF_MEMORY'] ??= '1';
/**
 * The CLI's log lines carry an ISO time off a terminal; the tests, which match warnings by
 * their text, read them as a journald user does (VMBKP_LOG_TIME=never). log-output.test
 * asks for the default (auto) and checks the time.
 */
process.env['VMBKP_LOG_TIME'] ??= 'never';

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

/**
 * Runs a command and collects its output. With `group`, the command gets its own process
 * group, and whatever it left running in that group (a backgrounded server) is stopped when
 * it exits, so a failed script never leaves orphans holding the output pipes open.
 */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; group?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { env: { ...process.env, CI: 'true', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.group ?? false, ...(opts.cwd ? { cwd: opts.cwd } : {}) };
    const child = spawn(cmd, args, spawnOpts);
    if (opts.group) {
      child.on('exit', () => {
        try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* the group is already empty */ }
      });
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** One problem `verify --json` reports; set, generation and disk where it knows them. */
export interface VerifyProblem { set?: string; generation?: number; disk?: string; message: string }
/** What `verify --json` prints. */
export interface VerifyJson {
  ok: boolean; generations: number; disks: number; packs: number; blobs: number; bytesRead: number;
  unreferencedPacks: number; unreferencedBlobs: number | null; problems: VerifyProblem[];
}

/** `verify --json` (with --read-data when `readData`); returns the exit, stderr and the parsed report. */
export async function verifyJson(repo: string, readData = false): Promise<{ r: RunResult; report: VerifyJson }> {
  const r = await vmbkp(['verify', '--repo', repo, '--json', ...(readData ? ['--read-data'] : [])]);
  let report: VerifyJson;
  try {
    report = JSON.parse(r.stdout) as VerifyJson;
  } catch {
    throw new Error(`verify printed no JSON (exit ${r.code}): ${r.stderr}`);
  }
  return { r, report };
}

/** Runs the CLI and expects success; returns parsed --json output. */
export async function vmbkpJson<T = unknown>(args: string[], env?: NodeJS.ProcessEnv): Promise<T> {
  const r = await vmbkp([...args, '--json'], env ? { env } : {});
  if (r.code !== 0) throw new Error(`vmbkp ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

// Loaded from the source tree at run time: the generator is plain JavaScript beside the
// benchmark, not compiled into dist/.
let generator: Promise<typeof DiskImage> | undefined;
export function diskImage(): Promise<typeof DiskImage> {
  return (generator ??= import(pathToFileURL(DISK_IMAGE).href) as Promise<typeof DiskImage>);
}

/** Makes a deterministic sparse image (bench/disk-image.mjs). */
export async function makeImage(out: string, size: string, seed: number): Promise<void> {
  await (await diskImage()).make({ out, size, seed });
}

/** Makes the next generation of an image and its CBT-shaped changed extents. */
export async function mutateImage(input: string, out: string, extents: string, change: number, seed: number): Promise<void> {
  await (await diskImage()).mutate({ input, out, extents, change, seed });
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

/** Flips every bit of one byte of a file in place; returns the byte's old value. */
export async function flipByte(file: string, offset: number): Promise<number> {
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, offset);
    if (bytesRead !== 1) throw new Error(`flipByte: ${file} has no byte at offset ${offset}`);
    const old = b[0]!;
    b[0] = old ^ 0xff;
    await fh.write(b, 0, 1, offset);
    return old;
  } finally {
    await fh.close();
  }
}

/** Relative paths of the files under a directory (not hashed), sorted; [] when it does not exist. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

export interface StartedCli {
  readonly child: ReturnType<typeof spawn>;
  readonly pid: number;
  /** Resolves when the process has exited (and been reaped). */
  readonly done: Promise<RunResult>;
  /** Resolves with stderr once it matches; rejects if the process exits first. */
  stderrMatching(re: RegExp): Promise<string>;
}

/** Starts the CLI without waiting for it, for tests that kill it or run something beside it. */
export function startVmbkp(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): StartedCli {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CI: 'true', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; for (const w of waiters) w(); });
  let exited = false;
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (err) => { exited = true; reject(err); for (const w of waiters) w(); });
    child.on('close', (code, signal) => { exited = true; resolve({ code, signal, stdout, stderr }); for (const w of waiters) w(); });
  });
  done.catch(() => {}); // surfaced to whoever awaits it
  return {
    child,
    pid: child.pid!,
    done,
    stderrMatching(re: RegExp) {
      return new Promise<string>((resolve, reject) => {
        const check = () => {
          if (re.test(stderr)) resolve(stderr);
          else if (exited) reject(new Error(`process exited before stderr matched ${re}; stderr:\n${stderr}\nstdout:\n${stdout}`));
        };
        waiters.push(check);
        check();
      });
    },
  };
}

/** A real nbdkit serving on a Unix socket; stop() ends it. */
export async function startNbdkit(dir: string, args: string[], name = 'nbd'): Promise<{ socket: string; uri: string; stop: () => Promise<void> }> {
  const socket = path.join(dir, `${name}.sock`);
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (!(await waitForSocket(socket, () => child.exitCode !== null))) throw new Error(`nbdkit ${args.join(' ')} did not start: ${stderr}`);
  return {
    socket,
    uri: `nbd+unix:///?socket=${socket}`,
    stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } },
  };
}

/**
 * Waits until a Unix socket accepts a connection (a server binds the path before it
 * listens, so the file existing is not enough). False if `gaveUp` says so, or after 10 s.
 */
export async function waitForSocket(socket: string, gaveUp: () => boolean = () => false): Promise<boolean> {
  const { connect } = await import('node:net');
  for (let i = 0; i < 400 && !gaveUp(); i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(socket);
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}
