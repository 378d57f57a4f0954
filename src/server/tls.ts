/**
 * The server's certificate: the configured cert/key, or a self-signed one generated once
 * into stateDir (openssl: Node has no X.509 generation) and kept across restarts, so its
 * fingerprint, printed at each start, stays the one clients pinned. The key is written
 * 0600 and never logged.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { InputError, IoError, describeCause } from '../errors.js';

export interface ServerCertificate {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of the DER certificate, as "AB:CD:…". */
  readonly fingerprint: string;
  /** Where it came from: the config's files, or generated (then its path in stateDir). */
  readonly source: 'config' | 'generated';
  readonly certFile: string;
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`reading the server's TLS ${what} ${file} failed: ${describeCause(err)}`, { cause: err });
  }
}

function fingerprintOf(cert: string, file: string): string {
  try {
    return new X509Certificate(cert).fingerprint256;
  } catch (err) {
    throw new InputError(`the server's TLS certificate ${file} is not a PEM certificate: ${describeCause(err)}`, { cause: err });
  }
}

async function generate(certFile: string, keyFile: string): Promise<void> {
  const host = hostname();
  const tmpCert = `${certFile}.tmp`;
  const tmpKey = `${keyFile}.tmp`;
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825',
      '-subj', `/CN=${host.replace(/[/=+]/g, '-')}`, '-addext', `subjectAltName=DNS:${host},DNS:localhost,IP:127.0.0.1,IP:::1`,
      '-keyout', tmpKey, '-out', tmpCert,
    ], { timeout: 60_000 });
    await chmod(tmpKey, 0o600);
    await rename(tmpKey, keyFile);
    await rename(tmpCert, certFile);
  } catch (err) {
    await rm(tmpKey, { force: true });
    await rm(tmpCert, { force: true });
    // stderr of openssl says what went wrong and holds no key material.
    throw new IoError(`generating a self-signed certificate in ${path.dirname(certFile)} with openssl failed: ${describeCause(err)}`, { cause: err });
  }
}

export async function serverCertificate(tls: { cert: string; key: string } | undefined, stateDir: string): Promise<ServerCertificate> {
  if (tls) {
    const cert = await readPem(tls.cert, 'certificate');
    const key = await readPem(tls.key, 'key');
    return { cert, key, fingerprint: fingerprintOf(cert, tls.cert), source: 'config', certFile: tls.cert };
  }
  const certFile = path.join(stateDir, 'server-cert.pem');
  const keyFile = path.join(stateDir, 'server-key.pem');
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  } catch {
    await generate(certFile, keyFile);
    [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  }
  return { cert, key, fingerprint: fingerprintOf(cert, certFile), source: 'generated', certFile };
}
