/**
 * The key derivation that starts before an encrypted repository opens (repository/kek.ts):
 * the open takes the one under way instead of deriving again, a wrong password still fails
 * as before, a plaintext repository never asks for the password, a key object that does not
 * parse starts nothing, and a password command runs once per run.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WrongPasswordError } from '../src/errors.js';
import { kdfOfKeyText, pendingKeyDerivations, startKeyDerivation } from '../src/repository/kek.js';
import { kdfForMemory } from '../src/repository/keys.js';
import { KEYS_PREFIX } from '../src/repository/layout.js';
import { Repository } from '../src/repository/repository.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { makeImage, oneLine, tempDir, vmbkp } from './helpers.js';

const CHEAP = kdfForMemory(1);

function counted(password: string): { read: () => Promise<string>; calls: () => number } {
  let n = 0;
  return { read: async () => { n++; return password; }, calls: () => n };
}

async function encrypted(password = 'right'): Promise<MemoryBackend> {
  const backend = new MemoryBackend();
  await Repository.init(backend, { encryption: { password, kdf: CHEAP } });
  return backend;
}

describe('kdfOfKeyText', () => {
  const good = { kdf: { name: 'scrypt', N: 1024, r: 8, p: 1, salt: Buffer.alloc(32, 7).toString('base64') } };
  it('reads the salt and parameters of a sound key object', () => {
    const r = kdfOfKeyText(JSON.stringify(good));
    assert.deepEqual(r?.kdf, { N: 1024, r: 8, p: 1 });
    assert.deepEqual(r?.salt, Buffer.alloc(32, 7));
  });
  it('starts nothing for text that is not a sound key object', () => {
    const bad = (kdf: Record<string, unknown>) => JSON.stringify({ kdf: { ...good.kdf, ...kdf } });
    for (const text of ['{', 'null', '[]', '{}', bad({ name: 'argon2' }), bad({ N: 1000 }), bad({ N: 1 }), bad({ r: 0 }), bad({ r: 65 }),
      bad({ p: 17 }), bad({ N: 2 ** 30, r: 64 }), bad({ salt: 5 }), bad({ N: '1024' })]) {
      assert.equal(kdfOfKeyText(text), undefined, text);
    }
  });
});

describe('startKeyDerivation', () => {
  it('starts the derivation of the first key, which the open then takes', async () => {
    const backend = await encrypted();
    const pw = counted('right');
    await startKeyDerivation(backend, pw.read);
    assert.equal(pendingKeyDerivations(), 1, 'a derivation is under way');
    const repo = await Repository.open(backend, { password: pw.read });
    assert.equal(repo.encrypted, true);
    assert.equal(pendingKeyDerivations(), 0, 'the open took the derivation under way');
  });

  it('a wrong password started early fails the open as before', async () => {
    const backend = await encrypted();
    const wrong = counted('wrong');
    await startKeyDerivation(backend, wrong.read);
    assert.equal(pendingKeyDerivations(), 1);
    await assert.rejects(Repository.open(backend, { password: wrong.read }), WrongPasswordError);
    assert.equal(pendingKeyDerivations(), 0);
  });

  it('never asks for the password of a plaintext repository', async () => {
    const backend = new MemoryBackend();
    await Repository.init(backend, {});
    const pw = counted('anything');
    await startKeyDerivation(backend, pw.read);
    assert.equal(pw.calls(), 0);
    assert.equal(pendingKeyDerivations(), 0);
  });

  it('starts nothing for a damaged key object, and the open reports the damage', async () => {
    const backend = await encrypted();
    const [name] = await backend.list(KEYS_PREFIX);
    await backend.remove(name!);
    await backend.put(name!, Buffer.from('{"kdf": "not an object"}'));
    const pw = counted('right');
    await startKeyDerivation(backend, pw.read);
    assert.equal(pendingKeyDerivations(), 0);
    await assert.rejects(Repository.open(backend, { password: pw.read }), /key .* is damaged/);
  });

  it('a password that cannot be read starts nothing', async () => {
    const backend = await encrypted();
    await startKeyDerivation(backend, () => Promise.reject(new Error('no password')));
    assert.equal(pendingKeyDerivations(), 0);
  });
});

describe('the command line', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => { ({ dir, cleanup } = await tempDir('vmbkp-kek-')); });
  after(() => cleanup());

  it('runs a password command once per backup, and a wrong password is still exit 8', async () => {
    const img = path.join(dir, 'disk.img');
    await makeImage(img, '4M', 3);
    const repo = path.join(dir, 'repo');
    const pwFile = path.join(dir, 'pw');
    await writeFile(pwFile, 'correct horse\n', { mode: 0o600 });
    const init = await vmbkp(['init', '--repo', repo, '--repo-password-file', pwFile]);
    assert.equal(init.code, 0, init.stderr);
    const calls = path.join(dir, 'calls');
    await writeFile(calls, '');
    const env = { VMBKP_REPO_PASSWORD_FILE: '', VMBKP_REPO_PASSWORD_COMMAND: `echo run >> '${calls}'; echo 'correct horse'` };
    const r = await vmbkp(['backup', '--repo', repo, '--set', 's', `d=file:${img}`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(calls, 'utf8'), 'run\n', 'the password command ran exactly once');

    const wrongFile = path.join(dir, 'wrong');
    await writeFile(wrongFile, 'battery staple\n', { mode: 0o600 });
    const w = await vmbkp(['backup', '--repo', repo, '--set', 's', '--repo-password-file', wrongFile, `d=file:${img}`]);
    assert.equal(w.code, 8, w.stderr);
    assert.match(oneLine(w.stderr), /the password opens none of its 1 key$/);
  });
});
