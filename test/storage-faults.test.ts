/**
 * Storage that cannot be read is not a damaged repository: a backend whose reads fail
 * with EIO or ECONNRESET makes restore and verify fail with the I/O code (exit 1) and a
 * message that says the pack could not be read, while a flipped byte in a pack is still
 * damage (exit 5). The faulty backend wraps the real local one; only its reads of packs fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exitCodeFor, ExitCode } from '../src/cli/exit-codes.js';
import { IoError, RepositoryDamagedError, VmbkpError } from '../src/errors.js';
import { restoreDiskJob } from '../src/jobs/restore-disk-job.js';
import { DATA_PREFIX } from '../src/repository/layout.js';
import { verify } from '../src/repository/verify.js';
import { FileTarget } from '../src/sources/file.js';
import type { StorageBackend } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local.js';
import { overrideBackend } from './backend-override.js';
import { flipByte, tempDir, vmbkp } from './helpers.js';
import { openTestRepository } from './repo-internals.js';

/**
 * The local backend, except that reads of packs after the first `pass` throw what `fault`
 * returns; with `statsFail`, so does every look-up of a pack (storage that is unreachable
 * altogether, not only for reads).
 */
function faulty(inner: StorageBackend, fault: () => Error, pass = 0, statsFail = false): StorageBackend {
  return overrideBackend(inner, {
    get: (name, range, into) => (name.startsWith(DATA_PREFIX) && pass-- <= 0 ? Promise.reject(fault()) : inner.get(name, range, into)),
    stat: (name) => (statsFail && name.startsWith(DATA_PREFIX) ? Promise.reject(fault()) : inner.stat(name)),
  });
}

const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
const FAULTS: [string, () => Error][] = [
  ['EIO', () => new IoError('reading a pack failed: EIO: i/o error, read', { cause: errno('EIO', 'i/o error, read') })],
  ['ECONNRESET', () => errno('ECONNRESET', 'read ECONNRESET')],
];

describe('storage failures are I/O errors, damage is damage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repoDir: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    repoDir = path.join(dir, 'repo');
    const image = path.join(dir, 'disk.img');
    // 8 MiB: random data, text and a hole, so the disk has several chunks in one pack.
    const data = Buffer.alloc(8 << 20);
    randomBytes(3 << 20).copy(data, 0);
    data.fill('the quick brown fox ', 4 << 20, 7 << 20);
    await fs.writeFile(image, data);
    for (const args of [['init', '--repo', repoDir], ['backup', '--repo', repoDir, '--set', 'vm', `sda=file:${image}`]]) {
      const r = await vmbkp(args);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => cleanup());

  async function restoreWith(backend: StorageBackend, target: string): Promise<unknown> {
    const repo = await openTestRepository(backend);
    try {
      await restoreDiskJob({ repo, set: 'vm', generation: 'latest', disk: 'sda', workers: 1, openTarget: (size) => FileTarget.create(target, size, false) });
    } catch (err) {
      return err;
    }
    assert.fail('the restore succeeded');
  }

  for (const [name, fault] of FAULTS) {
    it(`restore: ${name} on reading the disk's index exits with the I/O code and says it could not read`, async () => {
      const err = await restoreWith(faulty(new LocalBackend(repoDir), fault), path.join(dir, `restore-index-${name}.img`));
      assert.ok(err instanceof IoError, `an IoError, not ${String(err)}`);
      assert.equal(exitCodeFor(err.code), ExitCode.FAILURE);
      assert.match(err.message, new RegExp(`^restoring set vm generation 1 disk sda: could not read pack [0-9a-f]{64}: .*${name}`));
    });

    it(`restore: ${name} on reading chunks exits with the I/O code, says it could not read, and leaves no target`, async () => {
      const target = path.join(dir, `restore-${name}.img`);
      // The first pack read is the disk's index piece; the chunks' reads fail.
      const err = await restoreWith(faulty(new LocalBackend(repoDir), fault, 1), target);
      assert.ok(err instanceof IoError, `an IoError, not ${String(err)}`);
      assert.equal(exitCodeFor(err.code), ExitCode.FAILURE);
      assert.match(err.message, new RegExp(`^restoring set vm generation 1 disk sda failed: the chunk at offset \\d+: could not read pack [0-9a-f]{64}: .*${name}`));
      assert.doesNotMatch(err.message, /corrupt|damaged|missing/);
      await assert.rejects(fs.stat(target), { code: 'ENOENT' });
    });

    it(`restore: ${name} on reading and looking up packs is still an I/O error, not a missing pack`, async () => {
      const err = await restoreWith(faulty(new LocalBackend(repoDir), fault, 1, true), path.join(dir, `restore-stat-${name}.img`));
      assert.ok(err instanceof IoError, `an IoError, not ${String(err)}`);
      assert.equal(exitCodeFor(err.code), ExitCode.FAILURE);
      assert.match(err.message, new RegExp(`: could not read pack [0-9a-f]{64}: .*${name}`));
      assert.doesNotMatch(err.message, /corrupt|damaged|missing/);
    });

    it(`verify --read-data: ${name} on reads exits with the I/O code, not as damage`, async () => {
      const repo = await openTestRepository(faulty(new LocalBackend(repoDir), fault));
      const err = await verify({ repo, readData: true }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof IoError, `an IoError, not ${String(err)}`);
      assert.equal(exitCodeFor(err.code), ExitCode.FAILURE);
      assert.match(err.message, new RegExp(`^verify: could not read pack [0-9a-f]{64}: .*${name}`));
    });
  }

  it('the same repository read without faults verifies clean (the faults above were the only problem)', async () => {
    const report = await verify({ repo: await openTestRepository(repoDir), readData: true });
    assert.deepEqual(report.problems, []);
  });

  it('a flipped byte in a pack is still damage: restore exits 5 naming the corrupt blob', async () => {
    const packs = (await new LocalBackend(repoDir).list(DATA_PREFIX)).sort();
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(path.join(repoDir, p))).size));
    const biggest = packs[sizes.indexOf(Math.max(...sizes))]!;
    await flipByte(path.join(repoDir, biggest), 1000);
    const err = await restoreWith(new LocalBackend(repoDir), path.join(dir, 'restore-flipped.img'));
    assert.ok(err instanceof RepositoryDamagedError, `a RepositoryDamagedError, not ${String(err)}`);
    assert.equal(exitCodeFor((err as VmbkpError).code), ExitCode.DAMAGED);
    assert.match((err as Error).message, new RegExp(`blob [0-9a-f]{64} in pack ${path.basename(biggest)} is corrupt`));
    const r = await vmbkp(['verify', '--repo', repoDir, '--read-data']);
    assert.equal(r.code, ExitCode.DAMAGED, r.stderr);
  });
});
