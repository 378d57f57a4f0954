/** Certificates made by openssl for TLS tests, in the layout nbdkit, qemu-nbd, libnbd and vmbkp use. */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { run } from './helpers.js';

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  assert.equal(r.code, 0, r.stderr);
}

/**
 * DIR/NAME with a CA (ca-cert.pem, ca-key.pem), a server certificate for localhost
 * (server-cert.pem, server-key.pem) and a client certificate (client-cert.pem,
 * client-key.pem), both signed by the CA.
 */
export async function makeCertificates(dir: string, name: string): Promise<string> {
  const d = path.join(dir, name);
  await fs.mkdir(d);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '30', '-subj', `/CN=${name} CA`], d);
  await fs.writeFile(path.join(d, 'server.cnf'), 'subjectAltName=DNS:localhost\n');
  for (const [who, cn, ext] of [['server', 'localhost', ['-extfile', 'server.cnf']], ['client', `${name} client`, []]] as const) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}-key.pem`, '-out', `${who}.csr`, '-subj', `/CN=${cn}`], d);
    await openssl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${who}-cert.pem`, '-days', '30', ...ext], d);
  }
  return d;
}

/** A directory with only what a client that trusts `certs`' CA and has no certificate of its own holds. */
export async function caOnly(certs: string, name: string): Promise<string> {
  const d = path.join(path.dirname(certs), name);
  await fs.mkdir(d);
  await fs.copyFile(path.join(certs, 'ca-cert.pem'), path.join(d, 'ca-cert.pem'));
  return d;
}
