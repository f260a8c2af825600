import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { type CrashTruth, crashDump, crashTruth } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode } from '../../test/helpers/expect-code.js';
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

test('property: PageMap lookups agree with a linear scan of the runs it was given', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.boolean()), { minLength: 1, maxLength: 40 }), (spec) => {
      const map = new PageMap('test', 1n << 40n);
      const model: { pfn: number; count: number; off: number }[] = [];
      let pfn = 0;
      let off = 0x2000;
      for (const [gap, count, skipFile] of spec) {
        pfn += gap;
        if (skipFile) off += 4096; // bytes in the file that belong to no page: the runs must not merge
        map.add(BigInt(pfn), BigInt(count), BigInt(off), 0n);
        model.push({ pfn, count, off });
        pfn += count;
        off += count * 4096;
      }
      map.seal();
      for (let p = 0; p < pfn + 3; p++) {
        const m = model.find((r) => p >= r.pfn && p < r.pfn + r.count);
        const want = m ? BigInt(m.off + (p - m.pfn) * 4096 + 5) : undefined;
        assert.equal(map.fileOffsetOf(BigInt(p) * 4096n + 5n), want);
      }
      // coalesced runs are maximal: no two touch
      const runs = map.runs;
      for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.start >= runs[i - 1]!.end);
      assert.equal(runs.reduce((s, r) => s + (r.end - r.start), 0n), BigInt(model.reduce((s, r) => s + r.count, 0) * 4096));
    }),
    { numRuns: 300 },
  );
});

test('PageMap refuses overlapping runs, runs past the file and runs past 2^64 with coded errors', () => {
  const map = new PageMap('test', 0x10000n);
  map.add(4n, 2n, 0x2000n, 0x88n);
  expectCode(() => map.add(5n, 1n, 0x4000n, 0xa8n), 'E_CORRUPT', 0xa8n);
  expectCode(() => map.add(10n, 20n, 0x4000n, 0xa8n), 'E_TRUNCATED', 0xa8n);
  expectCode(() => map.add((1n << 52n) - 1n, 2n, 0x4000n, 0xa8n), 'E_CORRUPT', 0xa8n);
});
