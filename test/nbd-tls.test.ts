/** nbds:// against nbdkit --tls=require, with certificates made by openssl for the test. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { NbdClient } from '../src/nbd/client.js';
import { NbdServerError } from '../src/nbd/errors.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { makeCertificates } from './certificates.js';
import { startNbdkit, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let certs: string;
let other: string;
let server: Awaited<ReturnType<typeof startNbdkit>>;
before(async () => {
  ({ dir, cleanup } = await tempDir());
  certs = await makeCertificates(dir, 'good');
  other = await makeCertificates(dir, 'other');
  server = await startNbdkit(dir, ['--tls=require', `--tls-certificates=${certs}`, 'memory', '4M'], 'tls');
});
after(async () => { await server.stop(); await cleanup(); });

it('nbds+unix:// negotiates TLS (STARTTLS) and carries data', async () => {
  const c = await NbdClient.connect(parseNbdUri(`nbds+unix:///?socket=${server.socket}&tls-certificates=${certs}`));
  const data = Buffer.alloc(1 << 20, 0x5a);
  await c.write(1 << 20, data);
  assert.deepEqual(await c.read(1 << 20, 1 << 20), data);
  await c.close();
});

it('a certificate from another CA is refused', async () => {
  await assert.rejects(NbdClient.connect(parseNbdUri(`nbds+unix:///?socket=${server.socket}&tls-certificates=${other}`)), /TLS handshake failed/);
});

it('plain nbd:// to a server that requires TLS is a typed error that says so', async () => {
  await assert.rejects(NbdClient.connect(parseNbdUri(server.uri)), (e: Error) => e instanceof NbdServerError && e.nbdError === 'NBD_REP_ERR_TLS_REQD');
});
