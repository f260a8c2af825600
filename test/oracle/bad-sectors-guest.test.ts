/**
 * Real bad sectors: a disk whose sectors 777 and 5000–5002 fail with EIO, imaged by `memdump image` inside a
 * Debian kernel booted in QEMU. Device-mapper's `error` target is not available on this host, so the faults come
 * from QEMU's blkdebug driver under the guest's virtio disk: the guest kernel's block layer returns real I/O
 * errors to memdump's O_DIRECT reads, exactly as a failing drive's would. The host checks the image (zeros in
 * exactly those sectors, every other byte equal to the disk), the report's error runs, the dc3dd-style log, and
 * that --max-errors stops at the limit with a .partial image and an INCOMPLETE report.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';
import { findExecutable, withGuest } from '../helpers/qemu-guest.js';

const qemu = findExecutable('qemu-system-x86_64');
const SECTOR = 512;
const DISK_SECTORS = 8192; // 4 MiB
const BAD = [777, 5000, 5001, 5002];

const RUN_SH = `#!/bin/sh
memdump --json image /dev/vdd -o /work/bad.raw --retries 1 --hash-window 0 --digests md5,sha256 > /work/image.json 2> /work/image.err
echo $? > /work/image.rc
memdump --json image /dev/vdd -o /work/limit.raw --retries 0 --max-errors 2 --hash-window 0 > /work/limit.json 2> /work/limit.err
echo $? > /work/limit.rc
ls /work > /work/ls.txt
exit 0
`;

function blkdebugConfig(sectors: readonly number[]): string {
  return sectors.map((s) => `[inject-error]\nevent = "read_aio"\nerrno = "5"\nsector = "${s}"\nonce = "off"\n`).join('\n');
}

test('image of a disk with real bad sectors (QEMU blkdebug under a guest kernel): exact zero-fill, error runs, log, --max-errors', { skip: !qemu && 'qemu-system-x86_64 not installed', timeout: 600_000 }, async (t) => {
  const dir = tempDir(t);
  const disk = new Prng(77).bytes(DISK_SECTORS * SECTOR);
  const diskPath = path.join(dir, 'bad.img');
  writeFileSync(diskPath, disk);
  const conf = path.join(dir, 'blkdebug.conf');
  writeFileSync(conf, blkdebugConfig(BAD));
  const drive = `driver=raw,file.driver=blkdebug,file.config=${conf},file.image.driver=file,file.image.filename=${diskPath},if=none,id=bad,readonly=on,rerror=report`;

  await withGuest({ memoryMiB: 512, runScript: RUN_SH, timeoutMs: 400_000, extraArgs: ['-drive', drive, '-device', 'virtio-blk-pci,drive=bad,addr=0x7'] }, async (g) => {
    assert.equal(g.exitStatus, 0, `run.sh failed; console:\n${g.console.slice(-4000)}`);
    const text = async (p: string) => (await g.readFile(p)).toString();
    const rc = Number((await text('image.rc')).trim());
    assert.equal(rc, 0, `memdump image exit ${rc}: ${await text('image.err')}\nls: ${await text('ls.txt')}`);
    // the guest kernel saw real I/O errors on those sectors
    assert.match(g.console, /I\/O error, dev vdd, sector 777/);

    const image = await g.readFile('bad.raw');
    assert.equal(image.length, disk.length);
    const expected = Buffer.from(disk);
    for (const s of BAD) expected.fill(0, s * SECTOR, (s + 1) * SECTOR);
    assert.ok(image.equals(expected), 'zeros in exactly the bad sectors, every other byte as on the disk');

    const rep = parseReport(await text('bad.raw.report.json'), 'report');
    assert.equal(rep.status, 'COMPLETE');
    assert.deepEqual(
      rep.readErrors.map((r) => [r.start, r.end, r.errno, r.pages]),
      [
        ['0x' + (777 * SECTOR).toString(16), '0x' + (778 * SECTOR).toString(16), 'EIO', 1],
        ['0x' + (5000 * SECTOR).toString(16), '0x' + (5003 * SECTOR).toString(16), 'EIO', 3],
      ],
    );
    assert.equal(rep.image?.sectors.bad, String(BAD.length));
    assert.equal(rep.accounting.zeroFilled, String(BAD.length * SECTOR));
    assert.equal(rep.image?.device.type, 'block');
    assert.match(String(rep.source.info.io), /^direct/);
    const log = await text('bad.raw.log');
    assert.match(log, / 4 bad sectors replaced by zeros/);
    assert.match(log, /EIO, sector 777 \(1 sector\(s\)/);
    assert.match(log, /EIO, sectors 5000 - 5002 \(3 sector\(s\)/);

    // --max-errors 2: the third bad sector (5001) ends the copy; the .partial holds everything before it
    const limitRc = Number((await text('limit.rc')).trim());
    assert.equal(limitRc, 5, await text('limit.err'));
    const limitRep = parseReport(await text('limit.raw.report.json'), 'report');
    assert.equal(limitRep.status, 'INCOMPLETE');
    assert.equal(limitRep.failure?.code, 'E_TOO_MANY_ERRORS');
    const partial = await g.readFile('limit.raw.partial');
    assert.equal(partial.length, 5001 * SECTOR, 'the partial image ends exactly before the sector that hit the limit');
    assert.ok(partial.equals(expected.subarray(0, 5001 * SECTOR)));
  });
});
