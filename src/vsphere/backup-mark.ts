/**
 * The mark a backup leaves on a VM: an advanced setting (extraConfig)
 * `vmbkp.generation.<first 8 hex digits of the repository id>` naming the generation
 * whose snapshot was taken last, and the generation it followed when the VM was known to
 * descend from it. A snapshot keeps the VM's configuration and reverting to it brings that
 * back, so after a revert to a point before the last backup the mark names an older
 * generation; a recreated VM has no mark. Keyed per repository, so that two repositories
 * backing up one VM do not void each other's marks.
 */
import type { VsphereSession } from './session.js';
import { taskOf, waitForTask } from './task.js';
import { type MoRef, TypedText, type XmlNode, child, children, text } from './xml.js';

export const BACKUP_MARK_PREFIX = 'vmbkp.generation.';

export function backupMarkKey(repositoryId: string): string {
  return `${BACKUP_MARK_PREFIX}${repositoryId.replace(/-/g, '').slice(0, 8).toLowerCase()}`;
}

/** `generation`: the id of the generation marked; `after`: the generation it followed, when the VM descended from it. */
export interface BackupMark {
  readonly generation: string;
  readonly after?: string;
}

/** `<id>` or `<id> after <id>`. */
export function formatBackupMark(m: BackupMark): string {
  return m.after ? `${m.generation} after ${m.after}` : m.generation;
}

export function parseBackupMark(value: string): BackupMark | undefined {
  const m = /^(\S+)(?: after (\S+))?$/.exec(value.trim());
  if (!m) return undefined;
  return m[2] ? { generation: m[1]!, after: m[2] } : { generation: m[1]! };
}

/** A configuration's advanced settings, key → value (the last value of a key counts). */
export function extraConfigOf(config: XmlNode | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const o of children(config, 'extraConfig')) out.set(text(child(o, 'key')), text(child(o, 'value')));
  return out;
}

/** Sets advanced settings; an empty value removes one. */
export async function setAdvancedSettings(session: VsphereSession, vm: MoRef, settings: Readonly<Record<string, string>>, what: string): Promise<void> {
  const extraConfig = Object.entries(settings).map(([key, value]) => ({ key, value: new TypedText('xsd:string', value) }));
  const res = await session.call('ReconfigVM_Task', vm, { spec: { extraConfig } });
  await waitForTask(session, taskOf(res), { what });
}
