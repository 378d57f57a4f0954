/** vmbkp files list|ls|find|get|mount: file-level restore from a generation's disks (libguestfs). */
import type { Command } from 'commander';
import type { FileEntry, FindResult } from '../../app/files.js';
import { UsageError } from '../../errors.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes } from '../format.js';
import { getVerbosity } from '../log.js';
import { progressSink } from '../progress.js';

interface FilesOptions extends GlobalOptions {
  set: string;
  generation: string;
  disk?: string;
  fs?: string;
}

const SIGNAL_NUMBER: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/** While the appliance starts (seconds under KVM, 15–25 s under TCG): a line on a terminal that counts up. */
function launching(json: boolean): { onLaunching?: (ms: number) => void; done(): void } {
  if (json || getVerbosity() === 'quiet' || !process.stderr.isTTY || process.env['CI']) return { done() {} };
  let shown = false;
  return {
    onLaunching: (ms) => {
      shown = true;
      process.stderr.write(`\rvmbkp: starting the libguestfs appliance… ${Math.round(ms / 1000)} s`);
    },
    done: () => { if (shown) process.stderr.write('\r\x1b[K'); },
  };
}

function common(cmd: Command, generationOption = true): Command {
  cmd.requiredOption('--set <name>', 'backup set');
  if (generationOption) cmd.option('--generation <g>', 'a number, latest, latest~N, a date or date-time (newest at or before it), or an id prefix', 'latest');
  return cmd
    .option('--disk <disk>', 'the disk: its name, or a VM disk\'s key (2000), label ("Hard disk 1") or bus position (scsi0:0); may be left out when the generation has one disk');
}

function withFs(cmd: Command): Command {
  return cmd.option('--fs <name>', 'the filesystem: sda1 (a partition), sda (a whole disk) or VG/LV (LVM); may be left out when the disk has one');
}

const TYPE_CHAR: Record<FileEntry['type'], string> = { file: '-', directory: 'd', symlink: 'l', other: '?' };

function modeString(e: { type: FileEntry['type']; mode: number }): string {
  const rwx = ['r', 'w', 'x'];
  let s = TYPE_CHAR[e.type];
  for (let i = 8; i >= 0; i--) s += e.mode & (1 << i) ? rwx[(8 - i) % 3] : '-';
  return s;
}

function mtimeText(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}

function findText(r: FindResult): string {
  const lines: string[] = [];
  const multi = r.generations.length > 1;
  for (const m of r.matches) {
    let prev: FindResult['matches'][number]['versions'][number] | undefined;
    for (const g of r.generations) {
      const v = m.versions.find((x) => x.generation === g);
      if (!v) {
        if (prev && multi) lines.push(`${m.path}  generation ${g}  (not there: removed)`);
        prev = undefined;
        continue;
      }
      const mark = !multi ? '' : g === r.generations[0] ? '' : !prev ? '  new' : (prev.type !== v.type || prev.size !== v.size || prev.sha256 !== v.sha256) ? '  changed' : '';
      lines.push(`${m.path}  generation ${g}  ${v.type} ${v.size} ${mtimeText(v.mtime)}${v.sha256 ? ` sha256:${v.sha256.slice(0, 16)}` : ''}${mark}`);
      prev = v;
    }
  }
  return lines.length > 0 ? lines.join('\n') : 'no matches';
}

export function register(program: Command): void {
  const files = program.command('files')
    .description('file-level restore: list a generation\'s filesystems, browse, find across generations, copy files out, or mount one read-only (libguestfs)');

  common(files.command('list'))
    .description('list the partitions and filesystems of a generation\'s disk (or of all its disks)')
    .action(async (opts: FilesOptions) => {
      const { listGenerationFilesystems } = await import('../../app/files.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const l = launching(out.json);
      let r;
      try {
        r = await listGenerationFilesystems({ repo, set: opts.set, generation: opts.generation, ...(opts.disk !== undefined ? { disk: opts.disk } : {}) },
          { onWarning: (m) => out.warn(m), ...(l.onLaunching ? { onLaunching: l.onLaunching } : {}) });
      } finally { l.done(); }
      out.result(r, r.filesystems.map((f) => `${f.disk} ${f.name} ${f.type} ${f.size} ${f.label ?? '-'}`).join('\n') || 'no filesystems');
      if (!out.json) out.step(`read ${r.bytesRead} bytes from the repository`);
    });

  withFs(common(files.command('ls')))
    .description('list a directory of a filesystem (long format)')
    .argument('[path]', 'the directory (or file) in the filesystem', '/')
    .action(async (p: string, opts: FilesOptions) => {
      const { listPath } = await import('../../app/files.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const l = launching(out.json);
      let r;
      try {
        r = await listPath({ repo, set: opts.set, generation: opts.generation, path: p, ...(opts.disk !== undefined ? { disk: opts.disk } : {}), ...(opts.fs !== undefined ? { fs: opts.fs } : {}) },
          { onWarning: (m) => out.warn(m), ...(l.onLaunching ? { onLaunching: l.onLaunching } : {}) });
      } finally { l.done(); }
      const w = Math.max(0, ...r.entries.map((e) => String(e.size).length));
      out.result(r, r.entries.map((e) => `${modeString(e)} ${e.uid}:${e.gid} ${String(e.size).padStart(w)} ${mtimeText(e.mtime)} ${e.name}${e.target !== undefined ? ` -> ${e.target}` : ''}`).join('\n'));
      if (!out.json) out.step(`read ${r.bytesRead} bytes from the repository`);
    });

  withFs(common(files.command('find'), false))
    .description('find files by name (and mtime) under a directory, in one or several generations, and which generation changed them')
    .option('--generation <g>', 'one generation: a number, latest, latest~N, a date or an id prefix (default latest)')
    .option('--generations <list>', 'several: all, N,M,… or A..B (regular files then get a sha256 each)')
    .option('--name <glob>', 'base name pattern (shell glob: *, ?, […])')
    .option('--newer <date>', 'modified after this date or date-time')
    .option('--older <date>', 'modified before this date or date-time')
    .argument('[path]', 'the directory to search', '/')
    .action(async (p: string, opts: FilesOptions & { generation?: string; generations?: string; name?: string; newer?: string; older?: string }) => {
      const { findFiles, parseGenerationsSpec } = await import('../../app/files.js');
      const out = new Output(!!opts.json);
      if (opts.generation !== undefined && opts.generations !== undefined) throw new UsageError('--generation and --generations exclude each other');
      const date = (v: string | undefined, flag: string) => {
        if (v === undefined) return undefined;
        const d = new Date(v);
        if (Number.isNaN(d.getTime())) throw new UsageError(`${flag} needs a date or date-time (2026-03-01, 2026-03-01T08:00:00Z), got ${JSON.stringify(v)}`);
        return d;
      };
      const newer = date(opts.newer, '--newer');
      const older = date(opts.older, '--older');
      const generations = opts.generations !== undefined ? parseGenerationsSpec(opts.generations) : { kind: 'one' as const, selector: opts.generation ?? 'latest' };
      const repo = await openRepository(opts);
      const l = launching(out.json);
      let r;
      try {
        r = await findFiles({
          repo, set: opts.set, generations, path: p, ...(opts.disk !== undefined ? { disk: opts.disk } : {}), ...(opts.fs !== undefined ? { fs: opts.fs } : {}),
          ...(opts.name !== undefined ? { name: opts.name } : {}), ...(newer ? { newer } : {}), ...(older ? { older } : {}),
        }, { onWarning: (m) => out.warn(m), ...(l.onLaunching ? { onLaunching: l.onLaunching } : {}) });
      } finally { l.done(); }
      out.result(r, findText(r));
      if (!out.json) out.step(`read ${r.bytesRead} bytes from the repository`);
    });

  withFs(common(files.command('get')))
    .description('copy files or whole directories out of a filesystem into DIR (or a tar stream on stdout), keeping modes, times and symlinks')
    .argument('<path...>', 'files or directories in the filesystem')
    .requiredOption('--to <dir|->', 'the directory to copy into (created when missing), or - for a tar stream on stdout')
    .option('--overwrite', 'replace existing files in DIR (without it, an existing file stops the get before anything is written)')
    .action(async (paths: string[], opts: FilesOptions & { to: string; overwrite?: boolean }) => {
      const { getFiles } = await import('../../app/files.js');
      const { stopOnSignals } = await import('../stop-signals.js');
      const toTar = opts.to === '-';
      if (toTar && opts.json) throw new UsageError('--to - writes a tar stream on stdout: it excludes --json');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      let stoppedBy: NodeJS.Signals | undefined;
      const stop = stopOnSignals((sig) => { stoppedBy = sig; out.warn(`${sig}: stopping the get; files copied so far are removed`); });
      const l = launching(out.json || toTar);
      const bar = progressSink(out.json);
      let barStarted = false;
      try {
        const r = await getFiles({
          repo, set: opts.set, generation: opts.generation, paths, overwrite: !!opts.overwrite, signal: stop.signal,
          to: toTar ? { tar: process.stdout } : { dir: opts.to },
          ...(opts.disk !== undefined ? { disk: opts.disk } : {}), ...(opts.fs !== undefined ? { fs: opts.fs } : {}),
          onProgress: (done, total) => {
            if (!barStarted) { l.done(); bar.start('files get', total); barStarted = true; }
            bar.update(done, total);
          },
        }, { onWarning: (m) => out.warn(m), ...(l.onLaunching ? { onLaunching: l.onLaunching } : {}) });
        bar.stop();
        const text = `copied ${r.files} file${r.files === 1 ? '' : 's'}, ${r.directories} director${r.directories === 1 ? 'y' : 'ies'}, ${r.symlinks} symlink${r.symlinks === 1 ? '' : 's'} `
          + `(${bytes(r.bytes)}) from set ${r.set} generation ${r.generation} disk ${r.disk} filesystem ${r.fs} to ${r.to}; read ${r.bytesRead} bytes from the repository`;
        if (toTar) process.stderr.write(`vmbkp: ${text}\n`);
        else out.result(r, text);
      } catch (err) {
        bar.stop();
        if (stoppedBy) {
          // The error says what became of the files; the exit status says which signal stopped it.
          process.stderr.write(`vmbkp: error: ${(err as Error).message}\n`);
          process.exit(128 + (SIGNAL_NUMBER[stoppedBy] ?? 0));
        }
        throw err;
      } finally {
        l.done();
        stop.dispose();
      }
    });

  withFs(common(files.command('mount')))
    .description('mount a filesystem of a generation read-only at DIR (FUSE) until SIGINT or SIGTERM')
    .argument('<dir>', 'an existing directory to mount on')
    .action(async (dir: string, opts: FilesOptions) => {
      const { mountGeneration } = await import('../../app/files.js');
      const { stopOnSignals } = await import('../stop-signals.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const stop = stopOnSignals(() => {});
      const l = launching(out.json);
      try {
        let m;
        try {
          m = await mountGeneration({ repo, set: opts.set, generation: opts.generation, dir, signal: stop.signal,
            ...(opts.disk !== undefined ? { disk: opts.disk } : {}), ...(opts.fs !== undefined ? { fs: opts.fs } : {}) },
          { onWarning: (w) => out.warn(w), ...(l.onLaunching ? { onLaunching: l.onLaunching } : {}) });
        } finally { l.done(); }
        const info = { set: m.set, generation: m.generation, disk: m.disk, fs: m.fs, dir: m.dir };
        if (out.json) process.stdout.write(JSON.stringify({ mounted: info }) + '\n'); // one object, when ready
        else process.stdout.write(`mounted set ${m.set} generation ${m.generation} disk ${m.disk} filesystem ${m.fs} read-only at ${m.dir}\n`);
        const aborted = new Promise<void>((resolve) => {
          if (stop.signal.aborted) resolve();
          else stop.signal.addEventListener('abort', () => resolve());
        });
        await Promise.race([aborted, m.exited]);
        const bytesRead = await m.unmount();
        // Under --json the one object was the mounted line: the end goes to stderr.
        if (out.json) out.step(`unmounted ${m.dir}; read ${bytesRead} bytes from the repository`);
        else process.stdout.write(`unmounted ${m.dir}; read ${bytesRead} bytes from the repository\n`);
      } finally {
        stop.dispose();
      }
    });
}
