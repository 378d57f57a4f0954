/**
 * The extent lines of a VMDK text descriptor (VMware "Virtual Disk Format 5.0"):
 * `RW <sectors> <type> "<file>" [<offset>]`, where the file is relative to the
 * descriptor's directory — or, on vSAN and vVols, a storage object (`vsan://…`,
 * `vvol://…`) that no datastore URL serves.
 */
export interface VmdkExtent {
  readonly access: string;
  readonly sectors: number;
  /** FLAT, VMFS, VMFSSPARSE, SESPARSE, VSANSPARSE, SPARSE, … */
  readonly type: string;
  readonly file: string;
  readonly offset: number;
}

export function parseExtents(descriptor: string): VmdkExtent[] {
  const out: VmdkExtent[] = [];
  for (const line of descriptor.split(/\r?\n/)) {
    const m = /^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)\s+"([^"]*)"(?:\s+(\d+))?\s*$/.exec(line);
    if (m) out.push({ access: m[1]!, sectors: Number(m[2]), type: m[3]!, file: m[4]!, offset: Number(m[5] ?? 0) });
  }
  return out;
}

/** The scheme of an extent that is a storage object rather than a file ("vsan", "vvol"), or undefined. */
export function objectScheme(file: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(file)?.[1];
}
