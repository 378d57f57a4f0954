import type { Command } from 'commander';
import { type GlobalOptions, Output, openRepository } from '../context.js';
import { bytes, duration, table } from '../format.js';

/** A VM disk's label and bus position beside its key ("Hard disk 1, scsi0:0"); "-" for a plain disk. */
function diskWhere(d: { label?: string; bus?: string }): string {
  return [d.label, d.bus].filter((x) => x !== undefined).join(', ') || '-';
}

/** The machine's files saved with a generation, by role ("vmx+nvram"); "-" for none. */
function savedText(roles: readonly string[] | undefined): string {
  return roles?.map((r) => (r === 'config' ? 'vmx' : r)).join('+') || '-';
}

export function register(program: Command): void {
  program.command('list')
    .description('list sets and their generations')
    .option('--set <name>', 'only this set')
    .action(async (opts: GlobalOptions & { set?: string }) => {
      const { listSets } = await import('../../app/list.js');
      const out = new Output(!!opts.json);
      const repo = await openRepository(opts);
      const json = await listSets(repo, opts.set);
      const rows: string[][] = [];
      for (const { generations } of json.sets) {
        for (const g of generations) {
          for (const d of g.disks) {
            rows.push([g.set, String(g.generation), g.started.replace('T', ' ').slice(0, 19), g.mode, g.consistency ?? '-', g.machine?.instanceUuid ?? '-', d.name, diskWhere(d), d.mode, bytes(d.size), bytes(d.bytesRead), bytes(d.bytesStored), duration(d.durationMs), savedText(g.savedFiles)]);
          }
        }
      }
      out.result(json, rows.length === 0 ? 'no generations' : table(['set', 'gen', 'started (UTC)', 'mode', 'consistency', 'instance UUID', 'disk', 'label', 'disk mode', 'size', 'read', 'stored', 'time', 'saved files'], rows));
    });
}
