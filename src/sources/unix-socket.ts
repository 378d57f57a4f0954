/** Whether a server we started listens yet: a Unix socket path exists before it accepts. */
import net from 'node:net';

export function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
