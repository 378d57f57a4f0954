/** nbds:// against nbdkit --tls=require, with certificates made by openssl for the test. */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { NbdClient } from '../src/nbd/client.js';
import { NbdServerError } from '../src/nbd/errors.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { run, startNbdkit, tempDir } from './helpers.js';

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  assert.equal(r.code, 0, r.stderr);
}

/** A CA and a server certificate for localhost, in nbdkit's --tls-certificates layout. */
async function makeCertificates(dir: string, name: string): Promise<string> {
  const d = path.join(dir, name);
  await fs.mkdir(d);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '30', '-subj', `/CN=${name} CA`], d);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=localhost'], d);
  await fs.writeFile(path.join(d, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server-cert.pem', '-days', '30', '-extfile', 'ext.cnf'], d);
  return d;
}

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
