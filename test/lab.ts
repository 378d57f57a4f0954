/** The vSphere lab as a test fixture: build once, start per suite, talk to its control endpoint. */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { VsphereSession } from '../src/vsphere/session.js';
import { ROOT, tempDir, vmbkp } from './helpers.js';

const execFileP = promisify(execFile);

export interface LabInfo {
  url: string;
  user: string;
  password: string;
  thumbprint: string;
  thumbprintSha256: string;
  control: string;
  datastore: string;
  datastoreDir: string;
  datacenter: string;
  vms: string[];
  /** A second user, read-only until POST /users/NAME gives its role more. */
  restrictedUser: string;
  restrictedPassword: string;
}

export interface LabDisk {
  key: number; label: string; controllerKey: number; unitNumber: number; thin: boolean; fileName: string; capacity: number; changeId: string;
  path: string; extentPath: string;
  /** Descriptor names of the running chain, base first. */
  chain: string[];
}
export interface LabController { key: number; type: string; busNumber: number }
export interface LabNic { key: number; type: string; network: string; macAddress: string; addressType: string }
export interface LabVm {
  name: string; moref: string; powerState: string; tools: string; cbt: boolean; cbtPending: boolean; consolidationNeeded: boolean;
  uuid: string; instanceUuid: string; dir: string;
  controllers: LabController[]; nics: LabNic[]; disks: LabDisk[]; snapshots: { moref: string; name: string; parent: string }[];
  /** The snapshot the running point descends from, or "". */
  currentSnapshot: string;
}
export interface LabStats {
  snapshotsNow: number; vmbkpSnapshotsNow: number; maxVmbkpSnapshots: number; folderBytesServed: number; folderBytesStored: number;
  queryChangedCalls: number; maxDisksReadAtOnce: number; maxDisksWrittenAtOnce: number;
}

let built: Promise<string> | undefined;

/** Builds the lab binary once per test process (scripts/lab.mjs skips an up-to-date build). */
export function labBinary(): Promise<string> {
  built ??= execFileP(process.execPath, [path.join(ROOT, 'scripts/lab.mjs'), '--build-only'], { cwd: ROOT })
    .then(({ stdout }) => stdout.trim().split('\n').pop()!);
  return built;
}

export class Lab {
  private constructor(readonly info: LabInfo, private readonly child: ReturnType<typeof spawn>, private readonly exited: Promise<void>) {}

  static async start(args: string[] = []): Promise<Lab> {
    const bin = await labBinary();
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-8000); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`the lab exited (${code}) before describing itself: ${stderr}`)));
    });
    lines.on('line', () => {});
    return new Lab(JSON.parse(first) as LabInfo, child, exited);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
  }

  /** Writes the password where --password-file can read it. */
  async passwordFile(dir: string): Promise<string> {
    const file = path.join(dir, 'vcenter.password');
    await fs.writeFile(file, `${this.info.password}\n`, { mode: 0o600 });
    return file;
  }

  /** The CLI flags that reach this lab with a pinned certificate. */
  vcenterArgs(passwordFile: string): string[] {
    return ['--vcenter', this.info.url, '--user', this.info.user, '--password-file', passwordFile, '--thumbprint', this.info.thumbprintSha256];
  }

  async request(method: string, pathAndQuery: string, body?: Buffer | Uint8Array): Promise<Response> {
    const res = await fetch(`${this.info.control}${pathAndQuery}`, { method, ...(body ? { body: new Blob([new Uint8Array(body)]) } : {}) });
    if (!res.ok) throw new Error(`lab ${method} ${pathAndQuery}: HTTP ${res.status} ${await res.text()}`);
    return res;
  }

  async vms(): Promise<LabVm[]> {
    return (await (await this.request('GET', '/vms')).json()) as LabVm[];
  }

  async vm(name: string): Promise<LabVm> {
    const vm = (await this.vms()).find((v) => v.name === name);
    if (!vm) throw new Error(`lab has no VM ${name}`);
    return vm;
  }

  /** The guest writes `data` at `offset` of a disk. */
  async write(vm: string, key: number, offset: number, data: Uint8Array): Promise<void> {
    await this.request('POST', `/vms/${vm}/disks/${key}/write?offset=${offset}`, data);
  }

  /** Powers a VM on or off (through the simulator, as PowerOnVM_Task / PowerOffVM_Task would). */
  async power(vm: string, state: 'on' | 'off'): Promise<void> {
    await this.request('POST', `/vms/${vm}/power?state=${state}`);
  }

  async sha256(vm: string, key: number, snapshot?: string): Promise<string> {
    const q = snapshot ? `?snapshot=${encodeURIComponent(snapshot)}` : '';
    return ((await (await this.request('GET', `/vms/${vm}/disks/${key}/sha256${q}`)).json()) as { sha256: string }).sha256;
  }

  /** Arms a fault: kind is create-snapshot, query-changed, datastore-read, remove-snapshot, datastore-full. */
  async fault(kind: string, params: Record<string, string | number> = {}): Promise<void> {
    const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
    await this.request('POST', `/faults/${kind}${q ? `?${q}` : ''}`);
  }

  async clearFaults(): Promise<void> {
    await this.request('DELETE', '/faults');
  }

  async expireSessions(): Promise<void> {
    await this.request('POST', '/sessions/expire');
  }

  async stats(): Promise<LabStats> {
    return (await (await this.request('GET', '/stats')).json()) as LabStats;
  }

  async resetStats(): Promise<void> {
    await this.request('POST', '/stats/reset');
  }

  /**
   * Each VM's first reads (writes) under /folder wait until `files` of its disk files
   * are read (written) at once, or `waitMs` passes: parallel transfers then overlap on
   * any machine, and sequential ones still show one file at a time.
   */
  async gateFolder(files: number, waitMs = 10_000): Promise<void> {
    await this.request('POST', `/folder/gate?files=${files}&waitMs=${waitMs}`);
  }

  async ungateFolder(): Promise<void> {
    await this.request('DELETE', '/folder/gate');
  }

  async vmbkpSnapshots(vm: string): Promise<string[]> {
    return (await this.vm(vm)).snapshots.map((s) => s.name).filter((n) => n.startsWith('vmbkp-'));
  }
}

/** A started lab with a fresh repository and an API session on it, for the tests of one describe block. */
export interface LabRepository {
  readonly lab: Lab;
  readonly dir: string;
  readonly repo: string;
  /** A file holding the lab's password, for --password-file. */
  readonly pw: string;
  readonly session: VsphereSession;
  stop(): Promise<void>;
}

export async function startLabRepository(labArgs: string[]): Promise<LabRepository> {
  const { dir, cleanup } = await tempDir();
  const lab = await Lab.start(labArgs);
  const repo = path.join(dir, 'repo');
  const pw = await lab.passwordFile(dir);
  const init = await vmbkp(['init', '--repo', repo]);
  if (init.code !== 0) throw new Error(`vmbkp init failed: ${init.stderr}`);
  const session = await VsphereSession.connect({ url: lab.info.url, user: lab.info.user, password: lab.info.password, tls: { kind: 'pinned', thumbprint: lab.info.thumbprintSha256 } });
  return {
    lab, dir, repo, pw, session,
    async stop() {
      await session.close();
      await lab.stop();
      await cleanup();
    },
  };
}
