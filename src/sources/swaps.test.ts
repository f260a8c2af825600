import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { tempDir } from '../../test/helpers/cli.js';
import { isMemdumpError } from '../core/errors.js';
import { escapeSwapPath, findSwapAreas, parseProcSwaps, parseSwapHeader } from './swaps.js';

// the exact bytes of /proc/swaps on Linux 6.x: tabs between fields, names escaped by seq_file_path
const PROC_SWAPS =
  'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n' +
  '/dev/sda2                               partition\t8388604\t\t1024\t\t-2\n' +
  '/swap\\040file\\011with\\134odd\\012name    file\t\t2097148\t\t0\t\t-3\n' +
  '/var/swap\\040(deleted)                  file\t\t1048572\t\t12\t\t5\n' +
  '/dev/zram0                              partition\t4194300\t\t0\t\t100\n';

test('/proc/swaps: fields, octal escapes, negative and positive priorities, "(deleted)"', () => {
  assert.deepEqual(parseProcSwaps(PROC_SWAPS), [
    { path: '/dev/sda2', deleted: false, type: 'partition', sizeKiB: 8388604n, usedKiB: 1024n, priority: -2 },
    { path: '/swap file\twith\\odd\nname', deleted: false, type: 'file', sizeKiB: 2097148n, usedKiB: 0n, priority: -3 },
    { path: '/var/swap', deleted: true, type: 'file', sizeKiB: 1048572n, usedKiB: 12n, priority: 5 },
    { path: '/dev/zram0', deleted: false, type: 'partition', sizeKiB: 4194300n, usedKiB: 0n, priority: 100 },
  ]);
  assert.deepEqual(parseProcSwaps('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n'), []);
  assert.deepEqual(parseProcSwaps(''), []);
});

test('/proc/swaps: any path survives the kernel escaping (500 cases); mutated text throws only E_CORRUPT', () => {
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom('a', 'Z', '/', ' ', '\t', '\n', '\\', '0', '4', '(', ')', 'é', '.', '-'), minLength: 1, maxLength: 40 }),
      fc.constantFrom('file', 'partition'),
      fc.bigInt({ min: 0n, max: 1n << 50n }),
      fc.integer({ min: -32768, max: 32767 }),
      fc.boolean(),
      (path, type, size, prio, deleted) => {
        const full = '/' + path + (deleted ? ' (deleted)' : '');
        const text = `Filename\tType\tSize\tUsed\tPriority\n${escapeSwapPath(full)}\t${type}\t${size}\t${size / 2n}\t${prio}\n`;
        const [e] = parseProcSwaps(text);
        // the kernel's own output is ambiguous for a name that really ends in " (deleted)": findSwapAreas checks the disk
        const gone = full.endsWith(' (deleted)');
        assert.equal(e?.path, gone ? full.slice(0, -' (deleted)'.length) : full);
        assert.equal(e?.deleted, gone);
        assert.equal(e?.sizeKiB, size);
        assert.equal(e?.priority, prio);
      },
    ),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: PROC_SWAPS.length - 1 }), fc.string({ maxLength: 6 }), (at, junk) => {
      try {
        parseProcSwaps(PROC_SWAPS.slice(0, at) + junk + PROC_SWAPS.slice(at + junk.length));
      } catch (e) {
        assert.ok(isMemdumpError(e, 'E_CORRUPT'), String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('swap header: mkswap is the oracle for version, size, UUID and label; hibernation signatures; never throws', (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'sw');
  writeFileSync(f, Buffer.alloc(4 << 20), { mode: 0o600 });
  try {
    execFileSync('mkswap', ['-L', 'evidence 1', '-U', '0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', f], { stdio: 'pipe' });
  } catch {
    t.skip('mkswap is not installed');
    return;
  }
  const head = readFileSync(f).subarray(0, 65536);
  assert.deepEqual(parseSwapHeader(head), { magic: 'SWAPSPACE2', pageSize: 4096, hibernation: false, version: 1, lastPage: 1023, uuid: '0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', label: 'evidence 1' });
  // a hibernation image replaces the magic; a 64 KiB-page host puts it at the end of its first page
  const hib = Buffer.alloc(65536);
  hib.write('S1SUSPEND', 65536 - 10, 'latin1');
  assert.equal(parseSwapHeader(hib)?.hibernation, true);
  assert.equal(parseSwapHeader(hib)?.pageSize, 65536);
  assert.equal(parseSwapHeader(Buffer.alloc(65536)), undefined);
  assert.equal(parseSwapHeader(head.subarray(0, 4000)), undefined, 'too short for any page size');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 9000 }), (b) => void parseSwapHeader(Buffer.from(b))), { numRuns: 300 });
});

test('findSwapAreas: active areas from ROOT/proc/swaps; --all adds signature-bearing devices and fstab entries', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'root');
  mkdirSync(join(root, 'proc'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'sys/class/block/vdz'), { recursive: true });
  mkdirSync(join(root, 'dev'), { recursive: true });
  const swapfile = join(dir, 'swap file');
  writeFileSync(swapfile, Buffer.alloc(8192));
  writeFileSync(join(root, 'proc/swaps'), `Filename\tType\tSize\tUsed\tPriority\n${escapeSwapPath(swapfile)}\tfile\t4\t0\t-2\n/gone\\040(deleted)\tfile\t4\t0\t-3\n`);
  // a "device" under ROOT/dev (a plain file: the discovery reads its first page) with a swap signature
  const dev = Buffer.alloc(65536);
  dev.write('SWAPSPACE2', 4086, 'latin1');
  writeFileSync(join(root, 'dev/vdz'), dev);
  writeFileSync(join(root, 'sys/class/block/vdz/size'), '128\n');
  const inactive = join(dir, 'old swap');
  writeFileSync(inactive, dev);
  writeFileSync(join(root, 'etc/fstab'), `# comment\n${inactive.replace(/ /g, '\\040')} none swap sw 0 0\n${escapeSwapPath(swapfile)} none swap sw 0 0\nUUID=nope none swap sw 0 0\n`);

  const active = await findSwapAreas({ root });
  assert.deepEqual(
    active.map((a) => [a.path, a.found, a.unavailable ?? null]),
    [
      [swapfile, '/proc/swaps', null],
      ['/gone', '/proc/swaps', "deleted swap file: no path to open it by (image the filesystem's device instead)"],
    ],
  );
  const all = await findSwapAreas({ root, all: true });
  assert.deepEqual(
    all.map((a) => [a.path, a.found, a.header?.magic ?? null, a.unavailable ?? null]),
    [
      [swapfile, '/proc/swaps', null, null],
      ['/gone', '/proc/swaps', null, "deleted swap file: no path to open it by (image the filesystem's device instead)"],
      [join(root, 'dev/vdz'), 'swap signature SWAPSPACE2 (inactive)', 'SWAPSPACE2', null],
      [inactive, `/etc/fstab (${inactive.replace(/ /g, '\\040')}, inactive)`, 'SWAPSPACE2', null],
      [join(root, 'dev/disk/by-uuid/nope'), '/etc/fstab (UUID=nope, inactive)', null, `${join(root, 'dev/disk/by-uuid/nope')} does not exist`],
    ],
    'the active swap file listed in fstab is not listed twice',
  );
});
