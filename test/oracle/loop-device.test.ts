import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { ioctlGeometry } from '../../src/sources/block-geometry.js';
import { DeviceSource } from '../../src/sources/device.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';

/**
 * Real block devices: loop devices over seeded files (losetup), an ext4 filesystem mounted read-write on one.
 * Root only. Device-mapper is not available on this kind of machine, so real bad sectors come from the
 * fault-injecting source in src/pipeline/image-job.test.ts instead of a dm "error" target.
 */
const isRoot = process.geteuid?.() === 0;
const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

type T = { after: (fn: () => void) => void; skip: (why: string) => void };

/** losetup -f --show FILE (extra args before it); detached in cleanup whatever happens. */
function attach(t: T, file: string, extra: string[] = []): string | undefined {
  const r = spawnSync('losetup', ['-f', '--show', ...extra, file]);
  if (r.status !== 0) {
    t.skip(`losetup refused: ${r.stderr.toString().trim()}`);
    return undefined;
  }
  const dev = r.stdout.toString().trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  return dev;
}

test('a loop device: size and sectors from sysfs, O_DIRECT, the image equals the backing file (and dc3dd agrees)', { skip: !isRoot && 'needs root (losetup)' }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'disk.bin');
  const data = new Prng(21).bytes(8 << 20);
  writeFileSync(file, data);
  const dev = attach(t, file);
  if (!dev) return;
  const out = join(dir, 'loop.raw');
  const r = await runCli(['image', dev, '-o', out, '--verify']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /WARNING/);
  assert.ok(readFileSync(out).equals(data));
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.deepEqual(rep.image?.device, { path: dev, type: 'block', bytes: String(8 << 20), sectorSize: 512, mounted: null, swap: null });
  assert.equal(rep.image?.sectors.in, String((8 << 20) / 512));
  assert.equal(rep.image?.verify?.sourceChanged, false);
  assert.match(String(rep.source.info.io), /^direct/);
  assert.equal(rep.hashes?.digests.md5, md5(data));
  assert.match(readFileSync(out + '.log', 'utf8'), /device size: 16384 sectors \(probed\), 8388608 bytes\nsector size: 512 bytes \(probed\)/);
  if (hasTool('dc3dd')) {
    const dlog = join(dir, 'dc3dd.log');
    execFileSync('dc3dd', [`if=${dev}`, `of=${join(dir, 'dc3dd.img')}`, 'hash=md5', `log=${dlog}`], { stdio: 'pipe' });
    const d = readFileSync(dlog, 'utf8');
    assert.match(d, new RegExp(`${md5(data)} \\(md5\\)`));
    assert.match(d, /16384 sectors in/);
  }
});

test('a 4096-byte-sector loop device: the sector size comes from queue/logical_block_size', { skip: !isRoot && 'needs root (losetup)' }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, '4k.bin');
  const data = new Prng(22).bytes(1 << 20);
  writeFileSync(file, data);
  const dev = attach(t, file, ['-b', '4096']);
  if (!dev) return;
  const src = await DeviceSource.open(dev);
  t.after(() => void src.close());
  if (src.facts.sectorSize !== 4096) {
    t.skip(`losetup -b 4096 gave ${src.facts.sectorSize}-byte sectors`);
    return;
  }
  assert.equal(src.pageSize, 4096);
  // without sysfs the size and sector size come from BLKGETSIZE64 / BLKSSZGET: they must agree with sysfs
  const fd = openSync(dev, 'r');
  try {
    assert.deepEqual(ioctlGeometry(fd), { bytes: BigInt(data.length), sectorSize: 4096 });
  } finally {
    closeSync(fd);
  }
  const out = join(dir, '4k.raw');
  const r = await runCli(['image', dev, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readFileSync(out).equals(data));
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.image?.device.sectorSize, 4096);
  assert.equal(rep.image?.sectors.in, '256');
});

test('an ext4 loop device mounted read-write: a loud warning, report.image.device.mounted; output on it refused; ro is quiet', { skip: !isRoot && 'needs root (losetup, mount)' }, async (t) => {
  if (!hasTool('mkfs.ext4')) return t.skip('mkfs.ext4 is not installed');
  const dir = tempDir(t);
  const file = join(dir, 'fs.img');
  writeFileSync(file, new Prng(23).bytes(16 << 20));
  execFileSync('mkfs.ext4', ['-q', '-F', file]);
  const dev = attach(t, file);
  if (!dev) return;
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'ext4', dev, mnt]);
  if (m.status !== 0) return t.skip(`mount refused: ${m.stderr.toString().trim()}`);
  try {
    const out = join(dir, 'mounted.raw');
    const r = await runCli(['image', dev, '-o', out, '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`WARNING: SOURCE IS MOUNTED READ-WRITE at ${mnt}`), 'printed even with -q');
    const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
    assert.deepEqual(rep.image?.device.mounted && { ...rep.image.device.mounted, options: rep.image.device.mounted.options.split(',')[0] }, { mountPoint: mnt, options: 'rw', readWrite: true });
    assert.ok(rep.warnings.some((w) => w.startsWith('SOURCE IS MOUNTED READ-WRITE')));
    assert.match(readFileSync(out + '.log', 'utf8'), new RegExp(`mounted: ${mnt} rw\\S* — READ-WRITE`));

    // the backing file is in use too: its loop device is mounted
    const rf = await runCli(['image', file, '-o', join(dir, 'backing.raw'), '-q']);
    assert.equal(rf.code, 0, rf.stderr);
    assert.match(rf.stderr, /SOURCE IS MOUNTED READ-WRITE/);

    // writing the image onto the filesystem that lives on the source would overwrite evidence
    const onto = await runCli(['image', dev, '-o', join(mnt, 'x.raw')]);
    assert.equal(onto.code, 2, onto.stderr);
    assert.match(onto.stderr, /is on .* itself/);

    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const ro = join(dir, 'ro.raw');
    const r2 = await runCli(['image', dev, '-o', ro]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.doesNotMatch(r2.stderr, /WARNING/);
    const rep2 = parseReport(readFileSync(ro + '.report.json', 'utf8'), 'report');
    assert.equal(rep2.image?.device.mounted?.readWrite, false);
    assert.equal(rep2.image?.device.mounted?.mountPoint, mnt);
    // read-only and quiesced: the image equals the backing file byte for byte
    assert.ok(readFileSync(ro).equals(readFileSync(file)));
  } finally {
    spawnSync('umount', [mnt]);
  }
});
