/** status and show: the repository at a glance, and one set or generation in detail. */
import type { Command } from 'commander';
import type { GenerationDetails, SetDetails } from '../../app/show.js';
import type { RepositoryStatus } from '../../app/status.js';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes, duration, table } from '../format.js';

/** "3d04h ago", "12m05s ago". */
function ago(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const rest = duration((seconds % 86400) * 1000);
  return `${d > 0 ? `${d}d ` : ''}${rest} ago`;
}

function when(iso: string): string {
  return `${iso.replace('T', ' ').slice(0, 19)} UTC`;
}

function times(r: number | null): string {
  return r === null ? '-' : `${r.toFixed(2)}x`;
}

function statusText(s: RepositoryStatus): string {
  const r = s.repository;
  const kinds = Object.entries(s.storage.byKind).sort(([a], [b]) => a.localeCompare(b))
    .map(([k, g]) => `${k} ${bytes(g.bytes)} in ${g.objects}`).join(', ');
  const lines = [
    `repository   ${r.location} (${r.kind}, ${r.encrypted ? 'encrypted' : 'NOT encrypted'}, chunk size ${bytes(r.chunkSize)}${r.objectLock ? `, object lock ${r.objectLock.mode} ${r.objectLock.days} days` : ''})`,
    `on disk      ${bytes(s.storage.bytes)} in ${s.storage.objects} objects (${kinds})`,
    `data         ${s.data.chunks} chunks, ${bytes(s.data.uniqueBytes)} unique before compression, ${bytes(s.data.chunkBytesStored)} stored; ${s.data.indexPieces} index pieces; ${s.data.packs} packs, ${s.data.indexFiles} index files`,
    `logical      ${bytes(s.logicalBytes)} in ${s.generations} generations of ${s.sets.length} sets`,
    `ratios       dedup ${times(s.dedupRatio)}, compression ${times(s.compressionRatio)}`,
    `last verify  ${s.verify ? `${when(s.verify.time)} (${ago(s.verify.ageSeconds)})${s.verify.readData ? ' with --read-data' : ''}: ${s.verify.ok ? 'no problems' : `${s.verify.problems} problems`}` : 'none recorded'}`,
    ...(s.verify && s.verify.failed.length > 0
      ? [`failed       ${s.verify.failed.map((f) => `${f.set} generation ${f.generation}${f.exists ? '' : ' (since removed)'}`).join(', ')}`] : []),
    `last gc      ${s.gc ? `${when(s.gc.time)} (${ago(s.gc.ageSeconds)}): ${s.gc.packsRemoved} packs removed, ${bytes(s.gc.bytesFreed)} freed` : 'none recorded'}`,
    `locks        ${s.locks.length === 0 ? 'none' : ''}`.trimEnd(),
    ...s.locks.map((l) => (l.kind
      ? `  ${l.kind} by ${l.operation} (pid ${l.pid} on ${l.host}) since ${when(l.since!)}${l.stale ? ', stale: vmbkp unlock clears it' : ''}`
      : `  ${l.name}: unreadable`)),
  ];
  if (s.sets.length > 0) {
    lines.push('', table(['set', 'gens', 'newest', 'finished', 'age', 'mode', 'disks', 'logical', 'failed verify'],
      s.sets.map((x) => [
        x.name, String(x.generations), String(x.newest.generation), when(x.newest.finished), ago(x.newest.ageSeconds),
        x.newest.mode, x.newest.disks.map((d) => `${d.name}:${d.mode}`).join(' '), bytes(x.logicalBytes),
        x.failedVerify === null ? 'unknown' : x.failedVerify.length === 0 ? 'none' : x.failedVerify.join(' '),
      ])));
  }
  return lines.join('\n');
}

function setText(s: SetDetails): string {
  return table(['gen', 'started', 'mode', 'consistency', 'disks', 'size', 'read', 'stored', 'time', 'id'],
    s.generations.map((g) => [
      String(g.generation), when(g.started), g.mode, g.consistency ?? '-', g.disks.map((d) => `${d.name}:${d.mode}`).join(' '),
      bytes(g.totals.size), bytes(g.totals.bytesRead), bytes(g.totals.bytesStored), duration(g.totals.durationMs), g.id,
    ]));
}

function generationText(g: GenerationDetails): string {
  const m = g.machineDetails;
  const c = m?.configuration;
  const lines = [
    `set ${g.set} generation ${g.generation} (${g.id})`,
    `started      ${when(g.started)}, finished ${when(g.finished)} (${duration(g.totals.durationMs)})`,
    `mode         ${g.mode}`,
    `size         ${bytes(g.totals.size)}, ${bytes(g.totals.bytesRead)} read, ${bytes(g.totals.bytesStored)} stored`,
    '',
    table(['disk', 'size', 'mode', 'read', 'stored', 'time', 'source', 'note'], g.disks.map((d) => [
      d.name, bytes(d.size), d.mode, bytes(d.bytesRead), bytes(d.bytesStored), duration(d.durationMs), d.source, d.note ?? '',
    ])),
  ];
  if (m) {
    lines.push('', `machine      ${m.kind}${m.name ? ` ${m.name}` : ''}${m.moref ? ` (${m.moref}${m.vcenter ? ` on ${m.vcenter}` : ''})` : ''}`);
    if (m.instanceUuid) lines.push(`instance     ${m.instanceUuid}`);
    if (m.consistency) lines.push(`consistency  ${m.consistency}`);
    if (m.savedFiles) {
      lines.push(m.savedFiles.length === 0 ? 'saved files  none (no .vmx or nvram saved: a restore gets the firmware\'s default settings)'
        : m.savedFiles.map((f) => `saved file   ${f.name} (${f.role === 'config' ? 'configuration' : f.role === 'nvram' ? 'nvram: firmware settings' : f.role}, ${bytes(f.size)}, sha256 ${f.sha256})`).join('\n'));
    }
    if (m.snapshot) lines.push(`snapshot     ${m.snapshot}${m.changeTracking === undefined ? '' : `, change tracking ${m.changeTracking ? 'on' : 'off'}`}`);
    if (c) {
      lines.push(`hardware     ${c.cpus ?? '?'} CPUs${c.coresPerSocket ? ` (${c.coresPerSocket} per socket)` : ''}, ${c.memoryMB ?? '?'} MB memory${c.version ? `, ${c.version}` : ''}${c.firmware ? `, ${c.firmware}` : ''}`);
      lines.push(`guest        ${c.guestFullName ?? c.guestId ?? '?'}${c.guestFullName && c.guestId ? ` (${c.guestId})` : ''}`);
      for (const x of c.controllers) lines.push(`controller   ${x.label ?? x.type} (${x.type}, key ${x.key}${x.busNumber !== undefined ? `, bus ${x.busNumber}` : ''})`);
      for (const n of c.nics) lines.push(`nic          ${n.label ?? n.type} (${n.type}) on ${n.network ?? '?'}${n.macAddress ? `, ${n.macAddress}` : ''}`);
      for (const d of c.disks) {
        const ctl = c.controllers.find((x) => x.key === d.controllerKey);
        lines.push(`vm disk      ${d.label ?? d.key} (key ${d.key}${d.position ? `, ${d.position}` : ''}${ctl ? ` on ${ctl.label ?? ctl.type}` : ''})${d.capacity !== undefined ? ` ${bytes(d.capacity)}` : ''}${d.fileName ? ` ${d.fileName}` : ''}`);
      }
    }
  }
  lines.push('', g.warnings.length === 0 ? 'warnings     none recorded' : g.warnings.map((w) => `warning      ${w}`).join('\n'));
  return lines.join('\n');
}

export function register(program: Command): void {
  program.command('status')
    .description('the repository at a glance: size, dedup and compression, sets and their newest generation, last verify and gc, locks')
    .action(async (opts: GlobalOptions) => {
      const { repositoryStatus } = await import('../../app/status.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const s = await repositoryStatus(repo);
      out.result(s, statusText(s));
      out.retries(repo);
    });

  program.command('show')
    .description('one set (its generations, one line each) or, with --generation, one generation in detail')
    .requiredOption('--set <name>', 'backup set')
    .option('--generation <which>', 'a generation, as restore takes it (a number, latest, …)')
    .action(async (opts: GlobalOptions & { set: string; generation?: string }) => {
      const { showGeneration, showSet } = await import('../../app/show.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      if (opts.generation === undefined) {
        const s = await showSet(repo, opts.set);
        out.result(s, setText(s));
      } else {
        const g = await showGeneration(repo, opts.set, opts.generation);
        out.result(g, generationText(g));
      }
    });
}
