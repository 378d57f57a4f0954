/**
 * The vddk transport for restore: a writable `nbdkit vddk` on one disk of the restored
 * VM (no snapshot), written over NBD. Zero ranges become NBD write-zeroes, so VDDK
 * keeps a thin disk thin. Read back over the same connection.
 */
import { NbdTarget } from './nbd.js';
import { type VddkOptions, serveVddkDisk } from './vsphere-vddk.js';
import { type VmDisk, type VmDiskTarget, vmDiskLabel } from './vsphere-target.js';

export async function openVddkTarget(d: VmDisk, opts: VddkOptions): Promise<VmDiskTarget> {
  const what = vmDiskLabel(d);
  const server = await serveVddkDisk({ vm: d.vm.ref.value, file: d.disk.fileName, writable: true, what }, opts);
  let nbd: NbdTarget;
  try {
    nbd = await NbdTarget.open(server.uri, d.disk.capacity);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const stop = async () => {
    await nbd.close().catch(() => {});
    await server.stop();
  };
  return {
    description: `vddk:${d.disk.fileName}`,
    size: nbd.size,
    zeroed: nbd.zeroed,
    write: (offset, data) => nbd.write(offset, data),
    zero: (offset, length) => nbd.zero(offset, length),
    flush: () => nbd.flush(),
    readBack: async (offset, length, into) => { await nbd.read(offset, length, into); },
    close: stop,
    discard: stop,
  };
}
