/**
 * The kdump reader on seeded fixtures (test/fixtures/kdump.ts): every compression, plain and flattened (in order,
 * shuffled, overlapping with holes), header versions 1-6, excluded pages, the shared zero page, incomplete and
 * split dumps, large pages. Runs and every byte must equal the generator's truth.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type KdumpFixtureOptions, type KdumpTruth, MemorySink, kdumpFixture, runsOf, writeKdump } from '../../test/fixtures/kdump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';
import { isFlattened, openFlattened } from './kdump-flat.js';
import { kdump } from './kdump.js';
import { openImage } from './registry.js';
import type { MemoryImage } from './types.js';

async function expectTruth(img: MemoryImage, truth: KdumpTruth, label: string, seed: number): Promise<void> {
  assert.equal(img.format, 'kdump', label);
  assert.deepEqual(img.runs, truth.runs, `${label}: runs`);
  const bs = truth.blockSize;
  // every page, read run by run in one request each
  for (const r of truth.runs) {
    const got = await img.read(r.start, Number(r.end - r.start));
    for (let a = r.start; a < r.end; a += BigInt(bs)) {
      const off = Number(a - r.start);
      assert.ok(got.subarray(off, off + bs).equals(truth.page(Number(a / BigInt(bs)))), `${label}: page at ${a}`);
    }
  }
  // unaligned reads that cross pages inside a run
  const p = new Prng(seed);
  for (let k = 0; k < 20 && truth.runs.length > 0; k++) {
    const r = truth.runs[p.int(truth.runs.length)]!;
    const len = Number(r.end - r.start);
    const from = p.int(len);
    const n = 1 + p.int(len - from);
    const got = await img.read(r.start + BigInt(from), n);
    const want = Buffer.alloc(n);
    for (let i = 0; i < n; ) {
      const a = r.start + BigInt(from + i);
      const pfn = Number(a / BigInt(bs));
      const o = Number(a % BigInt(bs));
      const m = Math.min(bs - o, n - i);
      truth.page(pfn).copy(want, i, o, o + m);
      i += m;
    }
    assert.ok(got.equals(want), `${label}: unaligned read ${from}+${n} in run ${r.start}`);
  }
  // a hole is not readable
  const hole = truth.runs.length > 1 ? truth.runs[0]!.end : truth.runs.length === 1 ? truth.runs[0]!.end : 0n;
  if (!truth.runs.some((r) => r.start <= hole && hole < r.end)) {
    await assert.rejects(img.read(hole, 1), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT', `${label}: read in a hole`);
  }
}

async function check(t: { after: (fn: () => void) => void }, o: KdumpFixtureOptions, flat?: 'ordered' | 'shuffled' | 'overlapping'): Promise<MemoryImage> {
  const dir = tempDir(t, 'memdump-kdump-');
  const { bytes, truth } = await kdumpFixture(o, flat);
  const path = join(dir, 'dump.kdump');
  writeFileSync(path, bytes);
  assert.ok(kdump.detect(bytes.subarray(0, 65536), BigInt(bytes.length)));
  const img = await openImage(path);
  t.after(() => void img.close());
  await expectTruth(img, truth, `${JSON.stringify(o)} ${flat ?? 'plain'}`, o.seed);
  return img;
}

for (const compression of ['zlib', 'lzo', 'snappy', 'zstd', 'none', 'mixed'] as const) {
  test(`kdump ${compression}: plain and flattened (ordered, shuffled, overlapping) give the truth`, async (t) => {
    for (const [i, flat] of ([undefined, 'ordered', 'shuffled', 'overlapping'] as const).entries()) {
      const img = await check(t, { seed: 100 + i, compression, maxMapnr: 300 + i * 50 }, flat);
      assert.equal(img.details['flattened'], flat !== undefined);
      const seen = img.details['pageCompressionSeen'] as string[];
      if (compression !== 'mixed') assert.ok(seen.every((k) => k === compression || k === 'none'), `seen ${seen.join(',')}`);
      else assert.ok(seen.length >= 4, `mixed dump used only ${seen.join(',')}`);
    }
  });
}

test('header versions 1-6: VMCOREINFO from v3, ELF notes from v4, max_mapnr_64 from v6', async (t) => {
  for (const v of [1, 2, 3, 4, 5, 6]) {
    const img = await check(t, { seed: 7 + v, headerVersion: v, maxMapnr: 200 });
    const names = img.notes.map((n) => n.name);
    assert.equal(names.includes('VMCOREINFO'), v >= 3, `v${v}: ${names.join(',')}`);
    assert.equal(names.includes('CORE'), v >= 4, `v${v}: ${names.join(',')}`);
    assert.equal(img.details['headerVersion'], v);
    assert.equal(img.details['release'], '6.1.0-fixture');
    assert.equal(img.details['machine'], 'x86_64');
    assert.equal(img.details['blockSize'], 4096);
    assert.equal(img.details['maxMapnr'], 200);
    assert.equal(img.details['physBase'], '0x1000000');
  }
});

test('VMCOREINFO from the sub-header is exposed as note VMCOREINFO/0', async (t) => {
  const img = await check(t, { seed: 3, vmcoreinfo: 'OSRELEASE=6.6.6-notes\nPAGESIZE=4096\n' });
  const vi = img.notes.find((n) => n.name === 'VMCOREINFO');
  assert.equal(vi?.type, 0);
  assert.equal(vi?.desc.toString(), 'OSRELEASE=6.6.6-notes\nPAGESIZE=4096\n');
});

test('everything excluded, nothing excluded, large pages', async (t) => {
  const none = await check(t, { seed: 21, exclude: 1 });
  assert.deepEqual(none.runs, []);
  const all = await check(t, { seed: 22, exclude: 0, maxMapnr: 333 });
  assert.deepEqual(all.runs, [{ start: 0n, end: 333n * 4096n }]);
  await check(t, { seed: 23, blockSize: 16384, compression: 'mixed', maxMapnr: 100 }, 'shuffled');
  await check(t, { seed: 24, blockSize: 65536, compression: 'lzo', maxMapnr: 40 });
});

test('split dump: only the slice [start_pfn, end_pfn) is dumped', async (t) => {
  const img = await check(t, { seed: 31, maxMapnr: 400, exclude: 0.1, split: { startPfn: 100, endPfn: 250 } });
  assert.ok(img.runs.every((r) => r.start >= 100n * 4096n && r.end <= 250n * 4096n));
  assert.ok(img.runs.length > 0);
});

test('incomplete dump: pages never written are holes, and info says so', async (t) => {
  for (const flat of [undefined, 'shuffled'] as const) {
    const img = await check(t, { seed: 41, maxMapnr: 300, incomplete: 57 }, flat);
    assert.equal(img.details['incomplete'], true);
    assert.match(String(img.details['warning']), /INCOMPLETE/);
    assert.ok((img.details['missingPages'] as number) > 0);
  }
  // a dump cut short inside its page data (or its page_desc table) keeps the pages whose descriptor and data are there
  const dir = tempDir(t, 'memdump-kdump-cut-');
  const { bytes, truth } = await kdumpFixture({ seed: 42, maxMapnr: 600, exclude: 0.2, incomplete: 1 << 30 });
  const descAt = (1 + bytes.readInt32LE(432) + bytes.readUInt32LE(436)) * 4096;
  for (const cut of [descAt + 24 * 10 + 5, descAt + truth.pfns.length * 24 + 4096 + 20_000, bytes.length - 1]) {
    const kept = truth.pfns.filter((_, k) => {
      const o = descAt + k * 24;
      return o + 24 <= cut && Number(bytes.readBigInt64LE(o)) + bytes.readUInt32LE(o + 8) <= cut;
    });
    const path = join(dir, `cut-${cut}.kdump`);
    writeFileSync(path, bytes.subarray(0, cut));
    const img = await openImage(path);
    try {
      await expectTruth(img, { ...truth, pfns: kept, runs: runsOf(kept, 4096) }, `cut at ${cut}`, cut);
      assert.equal(img.details['missingPages'], truth.pfns.length - kept.length);
    } finally {
      await img.close();
    }
  }
});

test('a complete dump whose page_desc table is cut short is E_TRUNCATED; a bad descriptor is E_CORRUPT on read', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-bad-');
  const { bytes } = await kdumpFixture({ seed: 51, maxMapnr: 300, exclude: 0 });
  const bs = 4096;
  const descAt = bytes.readUInt32LE(432) * bs + bs + bytes.readUInt32LE(436) * bs;
  const cut = join(dir, 'cut.kdump');
  writeFileSync(cut, bytes.subarray(0, descAt + 100));
  await assert.rejects(openImage(cut), (e) => e instanceof MemdumpError && e.code === 'E_TRUNCATED');
  const bad = Buffer.from(bytes);
  bad.writeBigInt64LE(BigInt(bytes.length + 10), descAt + 24 * 5);
  const badPath = join(dir, 'bad.kdump');
  writeFileSync(badPath, bad);
  const img = await openImage(badPath);
  t.after(() => void img.close());
  await img.read(0n, 5 * bs);
  await assert.rejects(img.read(5n * 4096n, 1), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
});

test('a big-endian (s390x) kdump is E_UNSUPPORTED, not garbage', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-be-');
  const { bytes } = await kdumpFixture({ seed: 52 });
  for (const o of [8, 428, 432, 436, 440]) bytes.writeUInt32BE(bytes.readUInt32LE(o), o);
  bytes.write('s390x\0', 12 + 4 * 65, 'latin1');
  const path = join(dir, 'be.kdump');
  writeFileSync(path, bytes);
  await assert.rejects(openImage(path), (e) => e instanceof MemdumpError && e.code === 'E_UNSUPPORTED' && /big-endian.*s390x/.test(e.message));
});

test('flattened reassembly equals the plain file byte for byte (holes read as zeros, last write wins)', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-flat-');
  for (const [i, mode] of (['ordered', 'shuffled', 'overlapping'] as const).entries()) {
    const sink = new MemorySink();
    const { size } = await writeKdump({ seed: 60 + i, compression: 'mixed' }, sink);
    const plain = sink.plain(size);
    const stream = sink.flattened(mode, 60 + i, size);
    assert.ok(isFlattened(stream));
    const path = join(dir, `${mode}.flat`);
    writeFileSync(path, stream);
    const f = await RandomAccessFile.open(path);
    try {
      const b = await openFlattened(f);
      assert.equal(b.size, BigInt(plain.length));
      assert.equal(b.inOrder, mode === 'ordered');
      assert.ok((await b.read(0n, plain.length, 'all')).equals(plain), mode);
      const p = new Prng(i);
      for (let k = 0; k < 200; k++) {
        const at = p.int(plain.length);
        const n = p.int(Math.min(20_000, plain.length - at));
        assert.ok((await b.read(BigInt(at), n, 'piece')).equals(plain.subarray(at, at + n)), `${mode} ${at}+${n}`);
      }
      await assert.rejects(b.read(BigInt(plain.length - 1), 2, 'past end'), (e) => e instanceof MemdumpError && e.code === 'E_TRUNCATED');
    } finally {
      await f.close();
    }
  }
});

test('a flattened stream cut short keeps its complete records as an incomplete dump; a flattened ELF is E_UNSUPPORTED', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-flat2-');
  const { bytes, truth } = await kdumpFixture({ seed: 70, maxMapnr: 400, exclude: 0.2 }, 'ordered');
  // record boundaries of the stream: cut at each kind of place a full disk or a killed pipe leaves
  const ends: number[] = [];
  for (let pos = 4096; pos + 16 <= bytes.length; ) {
    const size = Number(bytes.readBigInt64BE(pos + 8));
    if (size < 0) break;
    pos += 16 + size;
    ends.push(pos);
  }
  const fixedEnd = ends.find((e) => e > 0.5 * bytes.length)!;
  for (const [label, cut] of [
    ['end record missing', bytes.length - 16],
    ['end record half there', bytes.length - 7],
    ['inside a record header', fixedEnd + 9],
    ['inside record data', fixedEnd + 16 + 100],
  ] as const) {
    const path = join(dir, `cut-${cut}.flat`);
    writeFileSync(path, bytes.subarray(0, cut));
    const img = await openImage(path);
    try {
      assert.equal(img.details['incomplete'], true, label);
      assert.match(String(img.details['warning']), /INCOMPLETE DUMP.*without its end record/, label);
      const kept = truth.pfns.filter((pfn) => img.runs.some((r) => r.start <= BigInt(pfn) * 4096n && BigInt(pfn) * 4096n < r.end));
      await expectTruth(img, { ...truth, pfns: kept, runs: runsOf(kept, 4096) }, label, cut);
      assert.equal((img.details['missingPages'] ?? 0) as number, truth.pfns.length - kept.length, label);
      if (cut >= bytes.length - 16) assert.equal(kept.length, truth.pfns.length, `${label}: nothing is lost`);
      else assert.ok(kept.length > 0 && kept.length < truth.pfns.length, `${label}: kept ${kept.length} of ${truth.pfns.length}`);
    } finally {
      await img.close();
    }
  }
  // cut before the kdump header is whole: nothing to read
  const early = join(dir, 'early.flat');
  writeFileSync(early, bytes.subarray(0, 4096 + 16 + 100));
  await assert.rejects(openImage(early), (e) => e instanceof MemdumpError && e.code === 'E_TRUNCATED');
  const sink = new MemorySink();
  sink.write(0, Buffer.from('7f454c46020101000000000000000000', 'hex'));
  const elf = join(dir, 'elf.flat');
  writeFileSync(elf, sink.flattened('ordered', 1, 16));
  await assert.rejects(openImage(elf), (e) => e instanceof MemdumpError && e.code === 'E_UNSUPPORTED' && /makedumpfile -R/.test(e.message));
});

test('eraseinfo (makedumpfile --config) is reported with a warning, and shown only up to a cap', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-erase-');
  const { bytes, truth } = await kdumpFixture({ seed: 90, maxMapnr: 200 });
  const rules = 'erase modules_list size 8\nerase jiffies_64 size 8\n';
  for (const [label, text] of [
    ['small', rules],
    ['huge', rules + 'erase x size 8\n'.repeat(20_000)],
  ] as const) {
    const b = Buffer.concat([bytes, Buffer.from(text)]);
    b.writeBigUInt64LE(BigInt(bytes.length), 4096 + 64);
    b.writeBigUInt64LE(BigInt(text.length), 4096 + 72);
    const path = join(dir, `${label}.kdump`);
    writeFileSync(path, b);
    const img = await openImage(path);
    try {
      const e = img.details['eraseinfo'] as { lines: string[]; bytes: number; cut?: boolean };
      assert.deepEqual(e.lines.slice(0, 2), ['erase modules_list size 8', 'erase jiffies_64 size 8'], label);
      assert.equal(e.bytes, text.length);
      assert.equal(e.cut, label === 'huge' ? true : undefined);
      assert.ok(e.lines.join('\n').length <= 64 << 10);
      assert.match(String(img.details['warning']), /ERASED MEMORY/);
      await expectTruth(img, truth, `eraseinfo ${label}`, 90);
    } finally {
      await img.close();
    }
  }
});

test('a flattened stream that claims a vast bitmap it never wrote opens at once (holes are skipped, not scanned)', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-vast-');
  const sink = new MemorySink();
  await writeKdump({ seed: 80, maxMapnr: 100 }, sink);
  const header = sink.pieces.find((p) => p.offset === 0)!.data;
  const sub = sink.pieces.find((p) => p.offset === 4096)!.data;
  header.writeUInt32LE(2 ** 31, 436); // bitmap_blocks: two 4 TiB bitmaps
  header.writeUInt32LE(0xffffffff, 440);
  sub.writeBigUInt64LE(1n << 40n, 96); // max_mapnr_64
  sink.write(2 ** 44, Buffer.from([1])); // one byte far away makes the logical file 16 TiB long
  const path = join(dir, 'vast.flat');
  writeFileSync(path, sink.flattened('ordered', 1, 0));
  const img = await openImage(path);
  t.after(() => void img.close());
  assert.deepEqual(img.runs, []);
  assert.equal(img.details['maxMapnr'], 2 ** 40);
});
