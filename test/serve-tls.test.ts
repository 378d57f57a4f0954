/**
 * vmbkp serve with TLS (--tls-certificates) and client certificates (--tls-verify-peer),
 * against libnbd's nbdinfo and nbdcopy, QEMU's qemu-img and vmbkp's own NBD client; plain clients and
 * clients without an accepted certificate are refused, and bad credentials are exit 2.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { NbdClient } from '../src/nbd/client.js';
import { NbdServerError } from '../src/nbd/errors.js';
import { parseNbdUri } from '../src/nbd/uri.js';
import { caOnly, makeCertificates } from './certificates.js';
import { makeImage, oneLine, run, sha256File, tempDir, treeDigest, vmbkp } from './helpers.js';
import { startServe } from './serve-cli.js';

const SIZE = 16 * 1024 * 1024;
const SIZE_ARG = '16M';

let dir: string;
let cleanup: () => Promise<void>;
let repo: string;
let imageSha: string;
/** CA, server and client certificates. */
let certs: string;
/** Only the CA: a client that trusts the server but has no certificate. */
let trustOnly: string;
/** A client certificate from another CA, with the server's CA trusted. */
let stranger: string;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  certs = await makeCertificates(dir, 'good');
  trustOnly = await caOnly(certs, 'trust-only');
  const other = await makeCertificates(dir, 'other');
  stranger = await caOnly(certs, 'stranger');
  for (const f of ['client-cert.pem', 'client-key.pem']) await fs.copyFile(path.join(other, f), path.join(stranger, f));

  const image = path.join(dir, 'a.img');
  await makeImage(image, SIZE_ARG, 7);
  imageSha = await sha256File(image);
  repo = path.join(dir, 'repo');
  assert.equal((await vmbkp(['init', '--repo', repo])).code, 0);
  const b = await vmbkp(['backup', '--repo', repo, '--set', 's', `d=file:${image}`]);
  assert.equal(b.code, 0, b.stderr);
});
after(async () => { await cleanup(); });

/** sha256 of everything nbdcopy reads from `uri`; the exit code when it fails. */
async function copySha(uri: string): Promise<{ code: number | null; sha?: string; stderr: string }> {
  const out = path.join(dir, `copy-${Math.random().toString(36).slice(2)}.raw`);
  const r = await run('nbdcopy', [uri, out]);
  if (r.code !== 0) return { code: r.code, stderr: r.stderr };
  const sha = await sha256File(out);
  await fs.rm(out);
  return { code: 0, sha, stderr: r.stderr };
}

const withCerts = (uri: string, d: string) => `${uri}${uri.includes('?') ? '&' : '?'}tls-certificates=${d}`;

it('--tls-certificates: nbdcopy reads the generation over TLS; a plain client is told TLS is required', async () => {
  const served = await startServe(['--repo', repo, '--set', 's', '--disk', 'd', '--tls-certificates', certs]);
  try {
    assert.match(served.info.uri, /^nbds\+unix:\/\/\/d\?socket=/);
    assert.deepEqual(served.info.tls, { clientCertificate: false });
    const copy = await copySha(withCerts(served.info.uri, trustOnly));
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.sha, imageSha);

    const info = await run('nbdinfo', [withCerts(served.info.uri, trustOnly)]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /with TLS/);

    const plainUri = served.info.uri.replace(/^nbds/, 'nbd');
    const plain = await run('nbdinfo', [plainUri]);
    assert.notEqual(plain.code, 0, 'a plain client must not get the export');
    await assert.rejects(NbdClient.connect(parseNbdUri(plainUri)),
      (e: Error) => e instanceof NbdServerError && e.nbdError === 'NBD_REP_ERR_TLS_REQD');

    // vmbkp's own client reads it too: a backup from the served generation over TLS.
    const c = await NbdClient.connect(parseNbdUri(withCerts(served.info.uri, trustOnly)));
    assert.equal(c.size, SIZE);
    await c.close();
  } finally {
    const r = await served.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

it('over TCP, the URI is nbds://; nbdcopy and qemu-img read it; the server certificate is checked against the host name', async () => {
  const served = await startServe(['--repo', repo, '--set', 's', '--disk', 'd', '--tls-certificates', certs, '--listen', 'tcp:localhost:0']);
  try {
    assert.match(served.info.uri, /^nbds:\/\/localhost:\d+\/d$/);
    const copy = await copySha(withCerts(served.info.uri, trustOnly));
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.sha, imageSha);
    // QEMU's client, with its own TLS stack (GnuTLS through QEMU's crypto layer).
    const port = /:(\d+)\//.exec(served.info.uri)![1]!;
    const q = path.join(dir, 'qemu.raw');
    const qemu = await run('qemu-img', ['convert', '-O', 'raw', '--object', `tls-creds-x509,id=tls0,dir=${certs},endpoint=client`,
      '--image-opts', `driver=nbd,host=localhost,port=${port},export=d,tls-creds=tls0`, q]);
    assert.equal(qemu.code, 0, qemu.stderr);
    assert.equal(await sha256File(q), imageSha);
    // The same server under a name its certificate does not carry: refused by the client.
    const wrongName = await run('nbdinfo', [withCerts(served.info.uri.replace('//localhost:', '//127.0.0.1:'), trustOnly)]);
    assert.notEqual(wrongName.code, 0);
  } finally {
    await served.stop();
  }
});

it('--tls-verify-peer: only a client certificate signed by DIR/ca-cert.pem gets the export; the server goes on serving', async () => {
  const served = await startServe(['--repo', repo, '--set', 's', '--disk', 'd', '--tls-certificates', certs, '--tls-verify-peer'], false);
  try {
    assert.match(served.line, /read-only, TLS with client certificates, at nbds\+unix:/);
    const none = await run('nbdinfo', [withCerts(served.info.uri, trustOnly)]);
    assert.notEqual(none.code, 0, 'a client without a certificate must be refused');
    const foreign = await run('nbdinfo', [withCerts(served.info.uri, stranger)]);
    assert.notEqual(foreign.code, 0, 'a certificate from another CA must be refused');
    await assert.rejects(NbdClient.connect(parseNbdUri(withCerts(served.info.uri, trustOnly))), /certificate required/);

    const copy = await copySha(withCerts(served.info.uri, certs));
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.sha, imageSha);
    const c = await NbdClient.connect(parseNbdUri(withCerts(served.info.uri, certs)));
    assert.equal((await c.read(0, 4096)).length, 4096);
    await c.close();

    // Each refusal is one warning line, naming the client and why.
    const warnings = served.stderr().split('\n').filter((l) => l.includes('TLS handshake failed'));
    assert.ok(warnings.length >= 2, served.stderr());
    for (const w of warnings) assert.match(w, /^vmbkp: warning: NBD client \d+: TLS handshake failed: .+; disconnected it$/);
  } finally {
    const r = await served.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

it('bad TLS input: exit 2 with one line naming the file, the repository untouched', async () => {
  const before = await treeDigest(repo);
  const serve = (...extra: string[]) => vmbkp(['serve', '--repo', repo, '--set', 's', '--disk', 'd', ...extra]);

  const noDir = await serve('--tls-verify-peer');
  assert.equal(noDir.code, 2);
  assert.equal(oneLine(noDir.stderr), 'vmbkp: error: --tls-verify-peer needs --tls-certificates DIR');

  const missingKey = await serve('--tls-certificates', trustOnly);
  assert.equal(missingKey.code, 2);
  assert.match(oneLine(missingKey.stderr), new RegExp(`^vmbkp: error: --tls-certificates: reading ${trustOnly}/server-(cert|key)\\.pem failed: ENOENT`));

  const mismatched = path.join(dir, 'mismatched');
  await fs.mkdir(mismatched);
  await fs.copyFile(path.join(certs, 'server-cert.pem'), path.join(mismatched, 'server-cert.pem'));
  await fs.copyFile(path.join(certs, 'client-key.pem'), path.join(mismatched, 'server-key.pem'));
  const wrongKey = await serve('--tls-certificates', mismatched);
  assert.equal(wrongKey.code, 2);
  assert.match(oneLine(wrongKey.stderr), new RegExp(`^vmbkp: error: --tls-certificates: the certificate and key in ${mismatched} cannot be used: `));

  // The key's contents never reach the output.
  const key = (await fs.readFile(path.join(certs, 'client-key.pem'), 'utf8')).split('\n')[1]!;
  for (const r of [noDir, missingKey, wrongKey]) assert.ok(!r.stderr.includes(key) && !r.stdout.includes(key));
  assert.deepEqual(await treeDigest(repo), before);
});
