/** Header shapes the reader must name rather than misread: QEMU's 32-bit header, and the 64-bit one it is not. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { kdumpFixture } from '../../test/fixtures/kdump.js';
import { layoutOf, parseDiskDumpHeader } from './kdump-header.js';

/** QEMU's DiskDumpHeader32 (32-bit guests): timeval of two u32 at 404, status 412, block_size 416, sub_hdr_size
 * 420, bitmap_blocks 424, max_mapnr 428, ..., nr_cpus 448. */
function header32(blockSize: number, maxMapnr: number): Buffer {
  const h = Buffer.alloc(blockSize);
  h.write('KDUMP   ', 0, 'latin1');
  h.writeUInt32LE(6, 8);
  h.write('Linux', 12, 'latin1');
  h.write('armv7l', 12 + 4 * 65, 'latin1');
  h.writeUInt32LE(1_700_000_000, 404);
  h.writeUInt32LE(1, 412);
  h.writeUInt32LE(blockSize, 416);
  h.writeUInt32LE(1, 420);
  h.writeUInt32LE(2 * Math.ceil(maxMapnr / 8 / blockSize), 424);
  h.writeUInt32LE(maxMapnr, 428);
  h.writeUInt32LE(1, 448);
  return h;
}

test('a 32-bit kdump header is E_UNSUPPORTED and says so, whatever its fields read as in the 64-bit layout', () => {
  // 16384 pages puts a plausible power of two where the 64-bit block size lies: the other fields give it away
  for (const [bs, pages] of [
    [4096, 16384],
    [4096, 262144],
    [4096, 1000],
    [16384, 4096],
  ] as const) {
    assert.throws(() => parseDiskDumpHeader(header32(bs, pages)), (e) => e instanceof MemdumpError && e.code === 'E_UNSUPPORTED' && /32-bit kdump header.*armv7l/.test(e.message), `${bs} ${pages}`);
  }
});

test('64-bit headers still parse, and garbage that is no 32-bit header stays E_CORRUPT', async () => {
  const { bytes } = await kdumpFixture({ seed: 1 });
  assert.equal(parseDiskDumpHeader(bytes.subarray(0, 464)).blockSize, 4096);
  const bad = Buffer.from(bytes.subarray(0, 464));
  bad.writeInt32LE(3000, 428);
  assert.throws(() => parseDiskDumpHeader(bad), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
});

test('layout needs the 2nd bitmap only up to the slice end (an empty --split slice ends there)', async () => {
  const { bytes } = await kdumpFixture({ seed: 2, maxMapnr: 100 });
  const h = parseDiskDumpHeader(bytes.subarray(0, 464));
  const bm2 = BigInt((1 + h.subHdrSize) * 4096 + 4096);
  const l = layoutOf(h, undefined, bm2 + 13n);
  assert.equal(l.bitmap2Offset, bm2);
  assert.throws(() => layoutOf(h, undefined, bm2 + 12n), (e) => e instanceof MemdumpError && e.code === 'E_TRUNCATED');
});
