/**
 * MachineProvider: what the jobs need from one kind of machine — a vSphere VM today, a
 * libvirt/QEMU domain later. The jobs keep what every kind shares (locks, modes, the
 * repository, batches, hooks, retention, bandwidth); a provider finds machines, freezes
 * them for a backup, and makes them (or takes an existing one) for a restore and opens
 * their disks; the restore job (jobs/restore-machine.ts) writes and checks the disks.
 */
import type { Progress } from '../engine/backup-disk.js';
import type { ChunkPool } from '../repository/chunk-pool.js';
import type { DiskIndex } from '../repository/disk-index.js';
import type { GenerationManifest } from '../repository/generation.js';
import type { MachineFileData } from '../repository/machine-files.js';
import type { Repository } from '../repository/repository.js';
import type { DiskSource, RestoreTarget } from '../sources/types.js';

/**
 * A machine to back up, as target resolution found it, or a target that found nothing
 * (reported as failed). `id` is the provider's id (a moref); a machine named on the
 * command line has none yet and is found by `name` (a name or an id) when its backup starts.
 */
export type MachineTarget =
  | { readonly name: string; readonly id?: string; readonly excludeDisks: readonly number[] }
  | { readonly name: string; readonly unresolved: string };

/**
 * What every stored machine record has (the manifest's `machine`, a union tagged by
 * `kind`: stored-machine.ts): its kind, and its disks, named as the generation names them.
 */
export interface MachineRecord {
  readonly kind: string;
  /** The hypervisor's id of this machine instance (vSphere's instance UUID): a recreated machine of the same name has another. */
  readonly instanceUuid?: string;
  /** How consistent the frozen disks are (absent in generations made before it was recorded). */
  readonly consistency?: Consistency;
  readonly disks: readonly {
    readonly name: string; readonly key: number; readonly label: string; readonly capacity: number; readonly skipped?: string;
  }[];
}

/**
 * How consistent a backup's disks are: `quiesced` (the guest flushed and froze its file
 * systems — and, with VSS, its applications — for the snapshot), `crash` (as if the power
 * had been cut: the guest's journals and databases recover as after a crash), or
 * `powered-off` (the machine was off: its disks at rest, as its last shutdown left them).
 */
export type Consistency = 'quiesced' | 'crash' | 'powered-off';

/**
 * Whether to quiesce the guest for the backup: `false` no, `true` ask (a backup that
 * could not be quiesced is kept, crash-consistent, with a warning), `'required'` ask and
 * fail the machine's backup when it could not be quiesced.
 */
export type QuiescePolicy = boolean | 'required';

/** What a provider reports while it works: steps for logs, warnings for the user. */
export type ProviderEvent = { type: 'step'; message: string } | { type: 'warning'; message: string };

/** A machine found and made ready for a backup (orphans of killed runs removed, change tracking as asked). */
export interface MachineToBackUp {
  /** The machine's name, as messages name it. */
  readonly name: string;
  /** The provider's id of the machine (a moref). */
  readonly id: string;
  /** The backup set its generations go to. */
  readonly set: string;
}

export interface BeginBackupOptions {
  /** The generation's id: a provider names what it freezes after it, so a later run finds it. */
  readonly id: string;
  readonly memory: boolean;
  readonly quiesce: QuiescePolicy;
  /** Disks not to back up (device keys), recorded as skipped. */
  readonly excludeDisks: readonly number[];
  /**
   * The set's newest generation, when there is one: the provider compares the machine it
   * recorded with the machine now, and voids change data it can no longer trust.
   */
  readonly previous?: GenerationManifest;
  /** The repository's id: a provider that marks machines per repository keys the mark with it. */
  readonly repositoryId?: string;
}

/** A backup begun: the frozen disks to read, the record the generation stores, and how to end it. */
export interface MachineBackup {
  /**
   * `changesVoid`: why the hypervisor's change data since the previous generation cannot be
   * trusted for this disk (the machine was reverted, overwritten, replaced…): the disk is
   * then read whole (diff), never incr.
   */
  readonly disks: readonly { readonly name: string; readonly source: DiskSource; readonly changesVoid?: string }[];
  readonly record: MachineRecord;
  /** Files of the machine the generation keeps beside its disks (a VM's .vmx and nvram), read at the freeze. */
  readonly files?: readonly MachineFileData[];
  /**
   * Called after every disk is read and stored, right before the generation commits: throws
   * when what was read can no longer be trusted (the snapshot was removed under the backup),
   * and then no generation is committed.
   */
  beforeCommit?(): Promise<void>;
  /**
   * Closes the disks and releases what begin froze (removes the snapshot): after success
   * and after failure. Throws when the release failed; the next run cleans it up.
   */
  end(): Promise<void>;
}

/** A disk of a machine in a dry run: what the backup would read, or why it skips it. */
export interface PlannedDisk {
  readonly name: string;
  readonly key: number;
  readonly label: string;
  readonly capacity: number;
  readonly skipped?: string;
  /** Why the hypervisor's change data since the previous generation cannot be trusted (see MachineBackup). */
  readonly changesVoid?: string;
}

/** What a dry run's survey is told: the disks to leave out, and what the backup would compare the machine with. */
export interface SurveyOptions {
  readonly enableCbt: boolean;
  readonly excludeDisks: readonly number[];
  /** The set's newest generation, if any. */
  readonly previous?: GenerationManifest | undefined;
  readonly repositoryId?: string | undefined;
}

/** A machine as a dry run sees it, from reading only. */
export interface MachineSurvey {
  readonly name: string;
  readonly id: string;
  readonly set: string;
  /** Whether the machine tracks changes now, and what the backup would do about it. */
  readonly changeTracking: 'on' | 'off' | 'would be enabled';
  /** What killed runs left, which the backup would remove first. */
  readonly orphans: readonly string[];
  readonly disks: readonly PlannedDisk[];
  /** What else the backup would do or not do, and why (e.g. change tracking it would not turn on). */
  readonly notes?: readonly string[];
}

/** What a restore job hands the provider: the generation, its stored machine, each disk's index (and the chunk workers the job writes the disks with). */
export interface MachineRestoreContext<M extends MachineRecord = MachineRecord> {
  readonly repo: Repository;
  readonly manifest: GenerationManifest;
  readonly machine: M;
  /** "set web01 generation 3", for messages. */
  readonly gen: string;
  /** The stored disks to restore (those the backup did not skip), each with its index. */
  readonly disks: readonly { readonly stored: M['disks'][number]; readonly index: DiskIndex }[];
  /** The chunk workers, leased on first use (when the job writes the first disk). */
  readonly pool: ChunkPool;
}

/** Machines as the inventory lists them, for resolving a recipe's targets (recipe/resolve-targets.ts). */
export interface MachineInventory {
  /** Where its machines are ("vcenter.example.com"): for messages, reports and hooks. */
  readonly location: string;
  /** Every machine: its name and id. */
  listMachines(): Promise<{ readonly name: string; readonly id: string }[]>;
  /** The machines under an inventory folder path; a NotFoundError when there is no such folder. */
  machinesInFolder(path: string): Promise<{ readonly name: string; readonly id: string }[]>;
  /** The backup set of a machine of this name. */
  setName(machineName: string): string;
}

/** Backing a machine up: made ready, frozen with its disks opened, released (jobs/backup-machine.ts). */
export interface BackupProvider {
  /** Finds the machine (a name or an id), cleans the orphans of killed runs, and turns change tracking on when asked. */
  prepareBackup(machine: string, opts: { readonly enableCbt: boolean }, emit: (e: ProviderEvent) => void): Promise<MachineToBackUp>;
  /** Freezes the machine (a snapshot) and opens its disks; on failure nothing stays frozen. */
  beginBackup(machine: MachineToBackUp, opts: BeginBackupOptions, emit: (e: ProviderEvent) => void): Promise<MachineBackup>;
  /** A dry run's view of a machine: its disks and change tracking, by reading only. */
  survey(machine: { readonly name: string; readonly id: string }, opts: SurveyOptions): Promise<MachineSurvey>;
}

export type MachineRestoreEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'disk-start'; disk: string; phase: 'write' | 'verify'; bytesTotal: number }
  | { type: 'progress'; disk: string; phase: 'write' | 'verify'; progress: Progress }
  | { type: 'disk-done'; disk: string };

/** What every restore asks for; a provider's request adds where the machine goes (placement, networks). */
export interface MachineRestoreRequest {
  /** The new machine's name (with `overwrite`: the existing machine whose disks are written). */
  readonly name: string;
  readonly overwrite?: boolean | undefined;
  readonly powerOn?: boolean | undefined;
  /** Disks written (and read back) at once; default 1. */
  readonly diskConcurrency?: number | undefined;
  /** Stops the restore at the next write: a machine it created is then destroyed like after any failure. */
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((e: MachineRestoreEvent) => void) | undefined;
}

/** What a provider's restore made of the machine; the job adds the set, generation and duration. */
export interface RestoredMachine {
  /** The machine's name. */
  readonly vm: string;
}

/** A disk of a machine under restore, matched to a stored disk. */
export interface DiskToRestore {
  /** The stored disk it gets (`ctx.disks[i].stored` for the i-th disk). */
  readonly stored: MachineRecord['disks'][number];
  /** Names the disk in messages: "disk 2000 of VM web01-restored (disk 2000 of set web01 generation 3)". */
  readonly what: string;
  /**
   * Opens the disk as a target, right before the job writes it; the job closes it once
   * the disk is written and read back (or failed).
   */
  open(): Promise<RestoreTarget>;
}

/** A disk as the job wrote and checked it, for the provider's result. */
export interface WrittenDisk {
  /** The disk's name in the generation. */
  readonly name: string;
  readonly size: number;
  readonly bytesWritten: number;
  readonly writeMs: number;
  readonly verifyMs: number;
}

/**
 * A machine made (or taken, with `overwrite`) for a restore, its disks ready to open.
 * The job writes and checks every disk, then calls `complete`; if any of it fails
 * (or `complete` does), `abandon`. After `complete`, `finish`.
 */
export interface MachineUnderRestore<Result extends RestoredMachine = RestoredMachine> {
  /** Its disks, in the order of the context's `disks`. */
  readonly disks: readonly DiskToRestore[];
  /**
   * Present when the disks can be read back only once every disk is written (an import
   * lease: vSphere's nfc transport): the job then writes every disk, calls this, and
   * only then reads the disks back.
   */
  written?(): Promise<void>;
  /** Every disk written and checked: marks the machine complete (removes the unfinished-restore marker). */
  complete(): Promise<void>;
  /**
   * Cleans up after a failure before `complete` returned: destroys a machine the restore
   * created (nothing for `overwrite`). Returns the error to throw: `err` with a note
   * saying what became of the machine.
   */
  abandon(err: unknown): Promise<Error>;
  /**
   * After `complete`: powers the machine on when asked. The machine is complete and stays
   * whatever happens here. `disks` are the job's, in the order of `disks`.
   */
  finish(disks: readonly WrittenDisk[]): Promise<Result>;
}

/**
 * Restoring a machine, in steps: `prepareRestore` makes it from the stored record (or takes
 * an existing one with `overwrite`) and matches its disks to the stored ones; on failure
 * nothing it made is left. The job (jobs/restore-machine.ts) has locked the repository,
 * resolved the generation and loaded every disk's index; it writes and checks the disks,
 * then completes, abandons or finishes the machine.
 */
export interface RestoreProvider<R extends MachineRestoreRequest, Result extends RestoredMachine> {
  prepareRestore(ctx: MachineRestoreContext, request: R): Promise<MachineUnderRestore<Result>>;
}

/** All of it: one provider per kind of machine. */
export interface MachineProvider<R extends MachineRestoreRequest = MachineRestoreRequest, Result extends RestoredMachine = RestoredMachine>
  extends MachineInventory, BackupProvider, RestoreProvider<R, Result> {
  /** The kind of stored machine record this provider writes and restores. */
  readonly kind: string;
}
