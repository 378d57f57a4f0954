/**
 * A machine's saved files (repository/machine-files.ts): stored as blobs of at most the
 * chunk size and read back checked; a record without `files` (an older vmbkp, plain
 * disks) names none; a malformed `files` or content that does not match its record is
 * damage, never silently less.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RepositoryDamagedError } from '../src/errors.js';
import { machineFileRefs, readMachineFile, storeMachineFile, withMachineFiles } from '../src/repository/machine-files.js';
import { Repository } from '../src/repository/repository.js';
import { MemoryBackend } from '../src/storage/memory.js';

async function memoryRepo(): Promise<Repository> {
  const backend = new MemoryBackend();
  await Repository.init(backend, { chunkSize: 64 * 1024 });
  const repo = await Repository.open(backend);
  await repo.loadIndex();
  return repo;
}

describe('machine files', () => {
  it('a file larger than a chunk and an empty one store as blobs and read back byte for byte', async () => {
    const repo = await memoryRepo();
    const writer = repo.writer();
    const big = randomBytes(2 * 64 * 1024 + 123);
    const a = await storeMachineFile(repo, writer, { name: 'web01.nvram', role: 'nvram', data: big });
    const b = await storeMachineFile(repo, writer, { name: 'web01.vmx', role: 'config', data: Buffer.alloc(0) });
    await writer.flush();
    assert.equal(a.ref.blobs.length, 3);
    assert.equal(a.ref.size, big.length);
    assert.equal(a.ref.sha256, createHash('sha256').update(big).digest('hex'));
    assert.equal(b.ref.blobs.length, 1);
    assert.deepEqual(await readMachineFile(repo, a.ref, 'nvram'), big);
    assert.deepEqual(await readMachineFile(repo, b.ref, 'vmx'), Buffer.alloc(0));

    const again = await storeMachineFile(repo, repo.writer(), { name: 'web01.nvram', role: 'nvram', data: big });
    assert.equal(again.bytesStored, 0, 'an unchanged file costs nothing in the next generation');

    await assert.rejects(readMachineFile(repo, { ...a.ref, sha256: '0'.repeat(64) }, 'nvram of web01'), (err: unknown) => {
      assert.ok(err instanceof RepositoryDamagedError);
      assert.match(err.message, /^nvram of web01: the stored content \(131195 bytes\) does not match its record/);
      return true;
    });
  });

  it('a record without files names none; a malformed one is damage; a copy swaps the references', () => {
    assert.deepEqual(machineFileRefs(undefined, 'gen'), []);
    assert.deepEqual(machineFileRefs({ kind: 'vsphere-vm', disks: [] }, 'gen'), []);
    const ref = { name: 'a.nvram', role: 'nvram', size: 1, sha256: 'ab'.repeat(32), blobs: ['cd'.repeat(32)] };
    assert.deepEqual(machineFileRefs({ kind: 'vsphere-vm', files: [ref] }, 'gen'), [ref]);
    assert.throws(() => machineFileRefs({ files: [{ ...ref, blobs: 'x' }] }, 'set web01 generation 2'), (err: unknown) => {
      assert.ok(err instanceof RepositoryDamagedError);
      assert.match(err.message, /^set web01 generation 2: the machine's saved files are malformed \(files\.0\.blobs: /);
      return true;
    });
    const other = { ...ref, blobs: ['ef'.repeat(32)] };
    assert.deepEqual(withMachineFiles({ kind: 'k', files: [ref] }, [other]), { kind: 'k', files: [other] });
    assert.deepEqual(withMachineFiles({ kind: 'k' }, [other]), { kind: 'k' }, 'a record that saved none stays as it was');
  });
});
