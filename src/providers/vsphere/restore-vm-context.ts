/**
 * What the parts of a VM restore share: the request, its events and result, and the
 * context restore-vm.ts hands to the steps (create, overwrite, disks, networks, finish).
 * In a module of its own so that the steps and restore-vm.ts do not import each other.
 */
import type { DiskIndex } from '../../repository/disk-index.js';
import type { OpenVmDisk } from '../../sources/vsphere-target.js';
import type { VsphereSession } from '../../vsphere/session.js';
import type { MachineRestoreEvent } from '../machine-provider.js';
import type { VsphereMachine } from './stored-vm.js';

export type VmRestoreEvent = MachineRestoreEvent;

export interface VmRestoreRequest {
  readonly session: VsphereSession;
  readonly set: string;
  /** A generation number, or "latest". */
  readonly generation: string;
  /** The new VM's name (with `overwrite`: the existing VM whose disks are written). */
  readonly name: string;
  /** Default: the datastore of the original VM's configuration file. */
  readonly datastore?: string | undefined;
  readonly host?: string | undefined;
  /** Inventory path of a VM folder. */
  readonly folder?: string | undefined;
  readonly resourcePool?: string | undefined;
  /** Old network (name, or distributed port group key) → new network name; unmapped NICs keep theirs. */
  readonly network?: Readonly<Record<string, string>> | undefined;
  readonly powerOn?: boolean | undefined;
  /** Keep BIOS and instance UUIDs and MAC addresses (default: new ones). */
  readonly keepIdentity?: boolean | undefined;
  /** Write the disks of an existing powered-off VM of that name. */
  readonly overwrite?: boolean | undefined;
  /** The transport: how a disk of the VM becomes a target. */
  readonly openDisk: OpenVmDisk;
  /** The transport writes every byte of a disk (https): a thin disk then takes its capacity on the datastore. */
  readonly writesWholeDisk: boolean;
  /** The VM is made by ImportVApp and its disks written through the import lease (the nfc transport). */
  readonly importsVm?: boolean | undefined;
  /** Disks written (and read back) at once; default 1. */
  readonly diskConcurrency?: number | undefined;
  /** Stops the restore at the next write (SIGINT): a VM it created is then destroyed like after any failure. */
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: (e: VmRestoreEvent) => void;
}

export interface RestoredDisk {
  /** The disk's name in the generation (its key in the backed-up VM). */
  readonly name: string;
  /** Its key in the restored VM. */
  readonly key: number;
  readonly fileName: string;
  readonly size: number;
  readonly bytesWritten: number;
  readonly writeMs: number;
  readonly verifyMs: number;
}

export interface VmRestoreResult {
  readonly set: string;
  readonly generation: number;
  readonly vm: string;
  readonly moref: string;
  /** False when `overwrite` wrote the disks of an existing VM. */
  readonly created: boolean;
  readonly poweredOn: boolean;
  readonly identity: 'new' | 'kept';
  readonly disks: readonly RestoredDisk[];
  readonly durationMs: number;
}

export interface DiskPlan {
  readonly stored: VsphereMachine['disks'][number];
  readonly index: DiskIndex;
}

/** A generation's saved nvram file, read and checked (restore-vm-nvram.ts). */
export interface SavedNvram {
  readonly name: string;
  readonly sha256: string;
  readonly data: Buffer;
}

export interface RestoreContext {
  readonly req: VmRestoreRequest;
  /** The firmware settings to put back; absent when the generation saved none. */
  readonly nvram?: SavedNvram | undefined;
  readonly emit: (e: VmRestoreEvent) => void;
  readonly warn: (m: string) => void;
  readonly gen: string;
  readonly machine: VsphereMachine;
  readonly plans: readonly DiskPlan[];
}

/** A restore as the job asks for it: the generation, repository and transport are the job's and the provider's. */
export type VsphereRestoreRequest = Omit<VmRestoreRequest, 'session' | 'set' | 'generation' | 'openDisk' | 'writesWholeDisk' | 'importsVm'>;

export type RestoreOutcome = Omit<VmRestoreResult, 'set' | 'generation' | 'durationMs'>;
