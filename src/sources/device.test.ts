import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';
import { DeviceSource, devIdOf, isReadWrite, parseMountinfo } from './device.js';

test('mountinfo: optional fields, octal escapes, per-mount and superblock options', () => {
  const text = [
    '22 27 0:21 / /proc rw,relatime - proc proc rw',
    '36 25 8:1 / /mnt/usb\\040stick rw,nosuid shared:12 master:3 - vfat /dev/sdb1 rw,fmask=0022',
    '37 25 8:2 /sub /srv/ro\\011bind ro,relatime - ext4 /dev/sda2 rw,errors=remount-ro',
    '38 25 7:0 / /media/cd ro - iso9660 /dev/loop0 ro',
    'garbage line',
    '',
  ].join('\n');
  const m = parseMountinfo(text);
  assert.deepEqual(
    m.map((x) => [x.devId, x.mountPoint, x.options, x.fsType, x.source, x.superOptions]),
    [
      ['0:21', '/proc', 'rw,relatime', 'proc', 'proc', 'rw'],
      ['8:1', '/mnt/usb stick', 'rw,nosuid', 'vfat', '/dev/sdb1', 'rw,fmask=0022'],
      ['8:2', '/srv/ro\tbind', 'ro,relatime', 'ext4', '/dev/sda2', 'rw,errors=remount-ro'],
      ['7:0', '/media/cd', 'ro', 'iso9660', '/dev/loop0', 'ro'],
    ],
  );
  // a read-only bind of a read-write filesystem still lets the filesystem write the device
  assert.deepEqual(m.map(isReadWrite), [true, true, true, false]);
  // the live file parses, and / is in it
  assert.ok(parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).some((x) => x.mountPoint === '/'));
});

test('dev_t decoding matches glibc makedev for small and large majors and minors', () => {
  const makedev = (ma: bigint, mi: bigint) => ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
  assert.equal(devIdOf(0x801n), '8:1');
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 0xffffffffn }), fc.bigInt({ min: 0n, max: 0xfffffn }), (ma, mi) => assert.equal(devIdOf(makedev(ma, mi)), `${ma}:${mi}`)),
    { numRuns: 300 },
  );
});

/** The open-file flags of our own descriptors on `path` (from /proc/self/fdinfo), to prove how it was opened. */
function openFlags(path: string): number[] {
  const out: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== path) continue;
      const m = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (m) out.push(parseInt(m[1]!, 8));
    } catch {
      // the descriptor closed meanwhile
    }
  }
  return out;
}

test('a regular file: whole size (last partial sector included), 512-byte sectors, opened O_RDONLY, reads the bytes', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'evidence.bin');
  const data = new Prng(7).bytes(300_001);
  writeFileSync(f, data);
  const src = await DeviceSource.open(f);
  t.after(() => src.close());
  assert.equal(src.kind, 'device');
  assert.equal(src.facts.type, 'file');
  assert.equal(src.facts.bytes, 300_001n);
  assert.equal(src.pageSize, 512);
  assert.deepEqual(src.ranges, [{ start: 0n, end: 300_001n }]);
  assert.match(src.facts.io, /^buffered/);
  assert.deepEqual(src.facts.mounts, []);
  const flags = openFlags(f);
  assert.equal(flags.length, 1);
  assert.equal(flags[0]! & 0o3, constants.O_RDONLY, 'O_ACCMODE bits: read-only');
  assert.equal(flags[0]! & (constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND), 0);
  const buf = Buffer.alloc(1000);
  assert.equal(await src.read(299_500n, buf, 1000), 501);
  assert.ok(buf.subarray(0, 501).equals(data.subarray(299_500)));
});

test('--io direct on a file: O_DIRECT through an aligned bounce buffer returns exactly the bytes asked for (300 reads)', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'direct.bin');
  const data = new Prng(11).bytes(3 * 1024 * 1024 + 777);
  writeFileSync(f, data);
  const src = await DeviceSource.open(f, { io: 'direct' });
  t.after(() => src.close());
  if (!src.facts.io.startsWith('direct')) {
    t.skip(`this filesystem refuses O_DIRECT: ${src.facts.io}`);
    return;
  }
  assert.ok((openFlags(f)[0]! & constants.O_DIRECT) !== 0);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: data.length + 100 }), fc.integer({ min: 1, max: 9 << 20 }), async (at, len) => {
      const buf = Buffer.alloc(len);
      const n = await src.read(BigInt(at), buf, len);
      // a read may be short (the bounce buffer bounds it) but never wrong, and never empty before the end
      assert.ok(n <= len);
      if (at < data.length) assert.ok(n > 0);
      assert.ok(buf.subarray(0, n).equals(data.subarray(at, at + n)));
    }),
    { numRuns: 300 },
  );
});

test('refuses what is not a disk or a file, without blocking on a FIFO', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(DeviceSource.open('/dev/null'), { code: 'E_UNSUPPORTED' });
  await assert.rejects(DeviceSource.open(dir), { code: 'E_UNSUPPORTED' });
  await assert.rejects(DeviceSource.open(join(dir, 'missing')), { code: 'E_NOT_FOUND' });
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(DeviceSource.open(fifo), { code: 'E_UNSUPPORTED' });
});
