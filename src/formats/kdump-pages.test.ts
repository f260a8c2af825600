/**
 * The page index on hostile layouts: a flattened stream's scan and trim must cost what the stream holds (counted
 * in bytes requested, never in time), and descriptors must point into the page data or the dump is refused.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { kdumpFixture } from '../../test/fixtures/kdump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { type DumpBytes, openFlattened } from './kdump-flat.js';
import { layoutOf, parseDiskDumpHeader, parseSubHeader } from './kdump-header.js';
import { PageMap } from './kdump-pages.js';
import { openImage } from './registry.js';

const BS = 4096;

function header(o: { status: number; bitmapBlocks: number; maxMapnr32: number }): Buffer {
  const h = Buffer.alloc(464);
  h.write('KDUMP   ', 0, 'latin1');
  h.writeInt32LE(6, 8);
  h.writeUInt32LE(o.status, 424);
  h.writeInt32LE(BS, 428);
  h.writeInt32LE(1, 432);
  h.writeUInt32LE(o.bitmapBlocks, 436);
  h.writeUInt32LE(o.maxMapnr32, 440);
  h.writeInt32LE(1, 460);
  return h;
}

function record(offset: bigint, data: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigInt64BE(offset, 0);
  h.writeBigInt64BE(BigInt(data.length), 8);
  return Buffer.concat([h, data]);
}

function desc(offset: bigint, size: number, flags: number): Buffer {
  const d = Buffer.alloc(24);
  d.writeBigInt64LE(offset, 0);
  d.writeUInt32LE(size, 8);
  d.writeUInt32LE(flags, 12);
  return d;
}

/** A flattened stream for a 256 GiB machine (2^26 pages, two 8 MiB bitmaps) whose parts come as given records. */
function stream(status: number, records: (layout: { bm2: bigint; desc: bigint }) => Buffer[]): Buffer {
  const maxMapnr = 1n << 26n;
  const bitmapBytes = maxMapnr / 8n;
  const sub = Buffer.alloc(104);
  sub.writeBigUInt64LE(maxMapnr, 96);
  const head = Buffer.alloc(4096);
  head.write('makedumpfile', 0, 'latin1');
  head.writeBigInt64BE(1n, 16);
  head.writeBigInt64BE(1n, 24);
  const end = Buffer.alloc(16, 0xff);
  const bm2 = 2n * BigInt(BS) + bitmapBytes;
  const parts = records({ bm2, desc: bm2 + bitmapBytes });
  return Buffer.concat([head, record(0n, header({ status, bitmapBlocks: Number((2n * bitmapBytes) / BigInt(BS)), maxMapnr32: 0 })), record(BigInt(BS), sub), ...parts, end]);
}

/** The stream's reassembled bytes, counting what the page index asks for. */
async function counted(t: { after: (fn: () => void) => void }, buf: Buffer): Promise<{ bytes: DumpBytes; asked: () => number; map: () => Promise<PageMap> }> {
  const path = join(tempDir(t, 'memdump-kdump-pages-'), 'x.flat');
  writeFileSync(path, buf);
  const f = await RandomAccessFile.open(path);
  t.after(() => void f.close());
  const flat = await openFlattened(f);
  let asked = 0;
  const bytes: DumpBytes = {
    size: flat.size,
    flattened: true,
    read: (pos, length, what) => {
      asked += length;
      return flat.read(pos, length, what);
    },
    nextData: (pos) => flat.nextData!(pos),
    extentEnd: (pos, limit) => flat.extentEnd!(pos, limit),
  };
  const h = parseDiskDumpHeader(await bytes.read(0n, 464, 'h'));
  const sub = parseSubHeader(await bytes.read(BigInt(BS), 104, 's'), 6, BigInt(BS));
  const layout = layoutOf(h, sub, bytes.size);
  asked = 0;
  return { bytes, asked: () => asked, map: () => PageMap.build(bytes, layout) };
}

test('a 2nd bitmap written as scattered 1-byte records is scanned for what is written, not a MiB per record', async (t) => {
  const K = 300;
  const buf = stream(1, ({ bm2, desc: d }) => {
    const recs: Buffer[] = [];
    for (let i = 0; i < K; i++) recs.push(record(bm2 + BigInt(i) * 20_000n, Buffer.from([1])));
    const data = d + BigInt(K * 24);
    recs.push(record(d, Buffer.concat(Array.from({ length: K }, () => desc(data, BS, 0)))), record(data, Buffer.alloc(BS, 0x61)));
    return recs;
  });
  const c = await counted(t, buf);
  const m = await c.map();
  assert.equal(m.descCount, K);
  assert.equal(m.runs.length, K);
  assert.deepEqual(m.runs[1], { start: 20_000n * 8n * BigInt(BS), end: (20_000n * 8n + 1n) * BigInt(BS) });
  assert.ok(c.asked() <= K * 16, `scanning ${K} one-byte records asked for ${c.asked()} bytes`);
});

test('an incomplete flattened dump whose page_desc table is a hole is trimmed without reading the hole', async (t) => {
  const bitmapBytes = 1 << 20; // 8 Mi pages marked dumped
  const buf = stream(1 | 8, ({ bm2, desc: d }) => [record(bm2, Buffer.alloc(bitmapBytes, 0xff)), record(d + BigInt(bitmapBytes) * 8n * 24n, Buffer.from([1]))]);
  const c = await counted(t, buf);
  const m = await c.map();
  assert.equal(m.descCount, bitmapBytes * 8);
  const scan = c.asked();
  assert.equal(scan, bitmapBytes, 'the bitmap is read once');
  assert.equal(await m.trimIncomplete(), bitmapBytes * 8);
  assert.deepEqual(m.runs, []);
  assert.ok(c.asked() - scan < 64 << 10, `trimming a hole of ${bitmapBytes * 8 * 24} bytes asked for ${c.asked() - scan}`);
});

test('an incomplete flattened dump keeps pages whose descriptor and data were both written', async (t) => {
  const buf = stream(1 | 8, ({ bm2, desc: d }) => {
    const data = d + 8n * 24n;
    const descs = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => desc(data + BigInt(i * BS), BS, 0));
    return [
      record(bm2, Buffer.from([0xff])),
      record(d, Buffer.concat(descs.slice(0, 6))), // descriptors 6 and 7 never written
      record(data, Buffer.alloc(2 * BS, 0x61)), // pages 0, 1
      record(data + 3n * BigInt(BS), Buffer.alloc(BS, 0x62)), // page 3; page 2's data never written
      record(data + 5n * BigInt(BS), Buffer.alloc(BS - 1, 0x63)), // page 5 cut one byte short
      record(data + 8n * BigInt(BS), Buffer.alloc(1)), // makes the logical file long enough for every page
    ];
  });
  const c = await counted(t, buf);
  const m = await c.map();
  assert.equal(await m.trimIncomplete(), 5);
  assert.deepEqual(
    m.runs.map((r) => [Number(r.start) / BS, Number(r.end) / BS]),
    [
      [0, 2],
      [3, 4],
    ],
  );
});

test('descriptors must point after the page_desc table: a shifted bitmap is refused at open, a stray one on read', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-shift-');
  const { bytes, truth } = await kdumpFixture({ seed: 21, compression: 'none', maxMapnr: 256, exclude: 0.3 });
  const bm2 = (2 + bytes.readInt32LE(432)) * BS;
  const descAt = bm2 + BS;
  // one bit too many in the 2nd bitmap: every later page_desc would belong to the wrong page
  const hole = [...Array(256).keys()].find((p) => !truth.pfns.includes(p) && p < truth.pfns[truth.pfns.length - 1]!)!;
  const shifted = Buffer.from(bytes);
  shifted[bm2 + (hole >> 3)]! |= 1 << (hole & 7);
  writeFileSync(join(dir, 'shifted.kdump'), shifted);
  await assert.rejects(openImage(join(dir, 'shifted.kdump')), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT' && /page data lies in/.test(e.message));
  // a descriptor in the middle pointing at the header block: its page is refused, the others read
  const stray = Buffer.from(bytes);
  desc(1n, BS, 0).copy(stray, descAt + 24 * 3);
  writeFileSync(join(dir, 'stray.kdump'), stray);
  const img = await openImage(join(dir, 'stray.kdump'));
  t.after(() => void img.close());
  await assert.rejects(img.read(BigInt(truth.pfns[3]!) * BigInt(BS), 16), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
  assert.ok((await img.read(BigInt(truth.pfns[4]!) * BigInt(BS), BS)).equals(truth.page(truth.pfns[4]!)));
});
