/**
 * The images of test/fs-images.ts, checked by libguestfs itself (guestfish, one appliance
 * launch for all of them): each layout's filesystem is found with its type and label, and
 * mounted read-only it holds exactly the generation's tree — names with spaces and non-ASCII
 * characters, file digests, symlink targets. The file-level restore tests rely on this.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { type BuiltImage, type Generation, LAYOUTS, type Layout, TREE, buildImage, guestfsEnv } from './fs-images.js';
import { tempDir } from './helpers.js';

/** Runs a guestfish script on the images (read-only); stdout, or a failure with stderr. */
function guestfish(images: readonly string[], script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ['--ro', ...images.flatMap((i) => ['--format=raw', '-a', i])];
    const child = spawn('guestfish', args, { env: { ...process.env, ...guestfsEnv() }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`guestfish exited with ${code}:\n${stderr}`))));
    child.stdin.end(script);
  });
}

/** guestfish's output split at `echo @@KEY` markers: KEY → the lines that followed. */
function sections(out: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of out.split('\n')) {
    if (line.startsWith('@@')) map.set(line.slice(2), current = []);
    else if (line !== '') current.push(line);
  }
  return map;
}

const q = (p: string): string => `"${p}"`;

describe('fs-images: the test disk images, as libguestfs reads them', () => {
  let cleanup: (() => Promise<void>) | undefined;
  /** Both generations of each layout but the LVM one's second: two copies of one PV in one appliance clash. */
  const images: BuiltImage[] = [];
  let out: Map<string, string[]>;

  const key = (layout: Layout, generation: Generation, what: string): string => `${layout}-${generation}:${what}`;

  before(async () => {
    const tmp = await tempDir('vmbkp-fs-images-');
    cleanup = tmp.cleanup;
    for (const g of [1, 2] as const) {
      for (const layout of LAYOUTS) if (!(layout === 'mbr-lvm-xfs' && g === 2)) images.push(await buildImage(layout, g, tmp.dir));
    }
    const lines = ['run', 'echo @@filesystems', 'list-filesystems'];
    images.forEach((img, i) => {
      const disk = `/dev/sd${String.fromCharCode(97 + i)}`;
      const dev = img.info.device.replace('/dev/sda', disk);
      const k = (what: string): string => key(img.layout, img.generation, what);
      lines.push(`echo @@${k('device')}`, `echo ${dev}`, `echo @@${k('label')}`, `vfs-label ${dev}`, `mount-ro ${dev} /`, `echo @@${k('find')}`, 'find /');
      for (const e of img.entries) {
        if (e.type === 'file') lines.push(`echo @@${k(`sha256 ${e.path}`)}`, `checksum sha256 ${q(e.path)}`);
        else if (e.type === 'symlink') lines.push(`echo @@${k(`link ${e.path}`)}`, `readlink ${q(e.path)}`);
      }
      lines.push('umount /');
    });
    out = sections(await guestfish(images.map((i) => i.path), `${lines.join('\n')}\n`));
  });
  after(() => cleanup?.());

  it('finds each filesystem with its type and label', () => {
    const found = new Map((out.get('filesystems') ?? []).map((l) => l.split(': ') as [string, string]));
    for (const img of images) {
      const dev = out.get(key(img.layout, img.generation, 'device'))?.[0];
      assert.ok(dev, `${img.layout}-${img.generation}: device`);
      assert.equal(found.get(dev), img.info.type, `${img.layout}-${img.generation}: type of ${dev}`);
      assert.deepEqual(out.get(key(img.layout, img.generation, 'label')), [img.info.label], `${img.layout}-${img.generation}: label`);
    }
  });

  it("holds exactly its generation's tree: the same names, file digests and symlink targets", () => {
    for (const img of images) {
      const name = `${img.layout}-${img.generation}`;
      const expected = [...img.entries.map((e) => e.path), ...img.info.extra].map((p) => p.slice(1)).sort();
      const found = (out.get(key(img.layout, img.generation, 'find')) ?? []).filter((p) => !img.info.extra.some((x) => p.startsWith(`${x.slice(1)}/`))).sort();
      assert.deepEqual(found, expected, `${name}: the paths in the filesystem`);
      for (const e of img.entries) {
        if (e.type === 'file') assert.deepEqual(out.get(key(img.layout, img.generation, `sha256 ${e.path}`)), [e.sha256], `${name}: sha256 of ${e.path}`);
        if (e.type === 'symlink') assert.deepEqual(out.get(key(img.layout, img.generation, `link ${e.path}`)), [e.target], `${name}: target of ${e.path}`);
      }
    }
  });

  it('has the changes between generations and the names the tests need', () => {
    for (const layout of LAYOUTS) {
      for (const img of images.filter((i) => i.layout === layout)) {
        const paths = img.entries.map((e) => e.path);
        assert.ok(paths.includes(TREE.spaced) && paths.includes(TREE.unicode), `${layout}: names with spaces and non-ASCII characters`);
        assert.equal(paths.includes(TREE.removed), img.generation === 1, `${layout}-${img.generation}: ${TREE.removed}`);
        assert.equal(paths.includes(TREE.added), img.generation === 2, `${layout}-${img.generation}: ${TREE.added}`);
        assert.equal(paths.includes(TREE.absoluteLink), img.info.symlinks, `${layout}: symlinks where the filesystem has them`);
      }
    }
  });
});
