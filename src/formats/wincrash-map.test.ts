import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { type CrashTruth, crashDump, crashTruth } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { wincrash } from './wincrash.js';
import { PageMap } from './wincrash-map.js';

/** A page that names its own PFN, so a page served from the wrong file offset cannot go unnoticed. */
function stamped(pfn: number): Buffer {
  const b = Buffer.alloc(4096, pfn & 0xff);
  b.write(`pfn ${pfn} `, 0, 'latin1');
  return b;
}

/** Replace the fixture's memory with exactly the pages whose bits are set. */
function fromBits(bits: boolean[], seed: number): CrashTruth {
  const t = crashTruth(seed, { bits: 64, layout: 'bitmap' });
  const runs: Range[] = [];
  const data: Buffer[] = [];
  for (let i = 0; i < bits.length; ) {
    if (!bits[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < bits.length && bits[j]) j++;
    runs.push({ start: BigInt(i) * 4096n, end: BigInt(j) * 4096n });
    data.push(Buffer.concat(Array.from({ length: j - i }, (_, k) => stamped(i + k))));
    i = j;
  }
  t.runs = runs;
  t.data = data;
  return t;
}

test('property: a bitmap dump maps page i to HeaderSize + 4096 * (set bits before i), coalesced into maximal runs', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-map-');
  const path = join(dir, 'b.dmp');
  await fc.assert(
    fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }), fc.integer({ min: 0, max: 70 }), fc.boolean(), async (bits, slack, garbage) => {
      fc.pre(bits.some((b) => b));
      const truth = fromBits(bits, bits.length);
      const bytes = crashDump(truth, { bitmapSlack: slack });
      if (garbage) {
        // bits past BitmapSize (the rest of the last byte and of its ULONG) are not pages
        const n = Number(bytes.readBigUInt64LE(0x2030));
        if (n % 8) bytes[0x2038 + (n >> 3)]! |= 0x55 << n % 8; // set and clear bits: a run must not start or end past the end
        bytes.fill(0x55, 0x2038 + Math.ceil(n / 8), 0x2038 + Math.ceil(n / 32) * 4);
      }
      writeFileSync(path, bytes);
      const file = await RandomAccessFile.open(path);
      const img = await wincrash.open(file, { path });
      try {
        assert.deepEqual(img.runs, truth.runs);
        const dataStart = bytes.readBigUInt64LE(0x2020);
        let rank = 0n;
        for (let pfn = 0; pfn < bits.length; pfn++) {
          const addr = BigInt(pfn) * 4096n;
          if (!bits[pfn]) {
            assert.equal(img.fileOffsetOf!(addr), undefined);
            continue;
          }
          const off = dataStart + rank * 4096n;
          assert.equal(img.fileOffsetOf!(addr + 17n), off + 17n);
          assert.equal(img.firstAddressIn!(off, off + 4096n), addr);
          assert.ok((await img.read(addr, 4096)).equals(stamped(pfn)), `page ${pfn}`);
          rank++;
        }
        assert.equal(img.firstAddressIn!(dataStart + rank * 4096n, dataStart + rank * 4096n + 4096n), undefined);
      } finally {
        await img.close();
      }
    }),
    { numRuns: 150 },
  );
});

test('property: PageMap lookups agree with a linear scan of the runs it was given, whatever the file order of the runs', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.boolean()), { minLength: 1, maxLength: 40 }),
      fc.boolean(),
      fc.integer(),
      (spec, shuffled, seed) => {
        // lay the runs out in the file in PFN order, or (RDMP ranges listed out of order) in a shuffled order
        const model: { pfn: number; count: number; off: number }[] = [];
        let pfn = 0;
        for (const [gap, count] of spec) {
          pfn += gap;
          model.push({ pfn, count, off: 0 });
          pfn += count;
        }
        const fileOrder = model.map((_, i) => i);
        const prng = new Prng(seed);
        for (let i = fileOrder.length - 1; shuffled && i > 0; i--) {
          const j = prng.int(i + 1);
          [fileOrder[i], fileOrder[j]] = [fileOrder[j]!, fileOrder[i]!];
        }
        let off = 0x2000;
        fileOrder.forEach((k, i) => {
          if (spec[i]![2]) off += 4096; // bytes in the file that belong to no page: the runs must not merge
          model[k]!.off = off;
          off += model[k]!.count * 4096;
        });
        const map = new PageMap('test', 1n << 40n);
        for (const m of model) map.add(BigInt(m.pfn), BigInt(m.count), BigInt(m.off), 0n);
        map.seal();
        for (let p = 0; p < pfn + 3; p++) {
          const m = model.find((r) => p >= r.pfn && p < r.pfn + r.count);
          const want = m ? BigInt(m.off + (p - m.pfn) * 4096 + 5) : undefined;
          assert.equal(map.fileOffsetOf(BigInt(p) * 4096n + 5n), want);
        }
        // firstAddressIn: the address held at the lowest file offset in [start, end)
        for (let f = 0x1000; f < off + 0x2000; f += 0x800) {
          let best: { off: number; addr: bigint } | undefined;
          for (const m of model) {
            const lo = Math.max(f, m.off);
            if (lo < Math.min(f + 0x1800, m.off + m.count * 4096) && (!best || lo < best.off)) best = { off: lo, addr: BigInt(m.pfn) * 4096n + BigInt(lo - m.off) };
          }
          assert.equal(map.firstAddressIn(BigInt(f), BigInt(f + 0x1800)), best?.addr, `file offset ${f.toString(16)}`);
        }
        // coalesced runs are maximal: no two touch
        const runs = map.runs;
        for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.start >= runs[i - 1]!.end);
        assert.equal(runs.reduce((s, r) => s + (r.end - r.start), 0n), BigInt(model.reduce((s, r) => s + r.count, 0) * 4096));
      },
    ),
    { numRuns: 300 },
  );
});

test('PageMap refuses overlapping runs and runs past 2^64 with coded errors, and clips runs past the end of the file', () => {
  const map = new PageMap('test', 0x10000n);
  map.add(4n, 2n, 0x2000n, 0x88n);
  expectCode(() => map.add(5n, 1n, 0x4000n, 0xa8n), 'E_CORRUPT', 0xa8n);
  expectCode(() => map.add((1n << 52n) - 1n, 2n, 0x4000n, 0xa8n), 'E_CORRUPT', 0xa8n);
  // the file ends at 0x10000: pages 10..21 need 0x4000..0x10000 (12 pages), the other 8 are not there
  map.add(10n, 20n, 0x4000n, 0xa8n);
  map.add(40n, 3n, 0x20000n, 0xb8n);
  map.seal();
  assert.deepEqual(map.runs, [
    { start: 4n * 4096n, end: 6n * 4096n },
    { start: 10n * 4096n, end: 22n * 4096n },
  ]);
  assert.equal(map.truncatedPages, 8 + 3);
  assert.equal(map.storedPages, 2 + 20 + 3);
  assert.equal(map.heldPages, 14);
  assert.equal(map.firstMissingPfn, 22n);
});

test('read() checks the whole range before allocating: bad lengths and holes are E_CORRUPT, never a RangeError', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-map-');
  const path = join(dir, 'f.bin');
  writeFileSync(path, Buffer.concat([Buffer.alloc(0x2000), stamped(4), stamped(5), stamped(9)]));
  const file = await RandomAccessFile.open(path);
  try {
    const map = new PageMap('test', file.size);
    map.add(4n, 2n, 0x2000n, 0n);
    map.add(9n, 1n, 0x4000n, 0n);
    map.seal();
    for (const len of [-1, 1.5, Number.NaN, 2 ** 53]) await expectCodeAsync(map.read(file, 4n * 4096n, len), 'E_CORRUPT');
    // 8 GiB from a held address: refused from the map alone (a Buffer that size would throw RangeError or exhaust memory)
    const rss = process.memoryUsage().rss;
    const e = await expectCodeAsync(map.read(file, 4n * 4096n, 2 ** 33), 'E_CORRUPT');
    assert.match(e.message, /reaches address 0x6000/);
    assert.ok(process.memoryUsage().rss - rss < 256 * 2 ** 20);
    await expectCodeAsync(map.read(file, 5n * 4096n + 100n, 4096), 'E_CORRUPT'); // runs into the hole at page 6
    await expectCodeAsync(map.read(file, 6n * 4096n, 1), 'E_CORRUPT');
    assert.equal((await map.read(file, 4n * 4096n, 0)).length, 0);
    assert.ok((await map.read(file, 4n * 4096n, 8192)).equals(Buffer.concat([stamped(4), stamped(5)])));
    assert.ok((await map.read(file, 9n * 4096n, 4096)).equals(stamped(9)));
  } finally {
    await file.close();
  }
});
