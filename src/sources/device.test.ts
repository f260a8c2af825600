import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';
import { DeviceSource } from './device.js';

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
