import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isReadWrite, parseMountinfo } from './device-mounts.js';

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
