import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CrashOptions, OLD_SUMMARY, assertImageMatches as assertMatches, crashDump, crashTruth, patched as patch } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { openCrashFile, openCrashBytes, sparseFile } from '../../test/helpers/wincrash-open.js';
import { wincrash } from './wincrash.js';

test('DumpType 2: the bitmap-dump summary and the old SUMMARY_DUMP32/64 are told apart by their fields, and a summary that fits neither is E_UNSUPPORTED', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  for (const bits of [64, 32] as const) {
    const truth = crashTruth(60 + bits, { bits, layout: 'summary-old', maxRuns: 12 });
    const bytes = crashDump(truth);
    const s = bits === 64 ? 0x2000 : 0x1000;
    const bitsAt = OLD_SUMMARY[bits].bits;
    // the old layout puts bits where the new one has HeaderSize / Pages / BitmapSize: read as the new layout these
    // are nonsense, and read right they give the truth
    for (const pointer of [0n, 0xfffffa8001234000n]) {
      const b = patch(bytes, (x) => (bits === 64 ? x.writeBigUInt64LE(pointer, s + 0x20) : x.writeUInt32LE(Number(pointer & 0xffffffffn), s + 0x1c)));
      const img = await openCrashBytes(dir, `old${bits}.dmp`, b);
      try {
        await assertMatches(img, truth, `${bits}-bit old summary, pointer ${pointer}`);
        assert.equal((img.details['layout'] as Record<string, unknown>)['summaryLayout'], `old SUMMARY_DUMP${bits} (32-bit fields)`);
        const off = img.fileOffsetOf!(truth.runs[0]!.start)!;
        assert.equal(off, BigInt(bytes.readUInt32LE(s + 0x0c)), 'the first page is at HeaderSize');
      } finally {
        await img.close();
      }
    }
    // Pages disagreeing with the bitmap: neither layout is consistent
    const e = await expectCodeAsync(openCrashBytes(dir, 'pages.dmp', patch(bytes, (x) => x.writeUInt32LE(x.readUInt32LE(s + 0x14) + 1, s + 0x14))), 'E_UNSUPPORTED');
    assert.match(e.message, /neither known layout/);
    // HeaderSize not page-aligned, or inside the bits
    await expectCodeAsync(openCrashBytes(dir, 'hs.dmp', patch(bytes, (x) => x.writeUInt32LE(x.readUInt32LE(s + 0x0c) + 8, s + 0x0c))), 'E_UNSUPPORTED');
    await expectCodeAsync(openCrashBytes(dir, 'hs2.dmp', patch(bytes, (x) => x.writeUInt32LE(s, s + 0x0c))), 'E_UNSUPPORTED');
    assert.ok(bitsAt === (bits === 64 ? 0x28 : 0x20));
  }
  // a type-2 dump with the bitmap-dump summary still reads with it, in both widths
  for (const bits of [64, 32] as const) {
    const truth = crashTruth(70 + bits, { bits, layout: 'bitmap', summary: 'SDMP' });
    const img = await openCrashBytes(dir, `new2-${bits}.dmp`, patch(crashDump(truth), (b) => b.writeUInt32LE(2, bits === 64 ? 0xf98 : 0xf88)));
    try {
      await assertMatches(img, truth, `${bits}-bit type 2, bitmap-dump summary`);
      assert.equal((img.details['layout'] as Record<string, unknown>)['summaryLayout'], 'bitmap-dump summary (64-bit fields)');
    } finally {
      await img.close();
    }
  }
});

test('a dump shorter than its map opens with the pages it holds and says how many are missing', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const cases: { name: string; o: CrashOptions }[] = [
    { name: 'full64', o: { bits: 64, layout: 'full' } },
    { name: 'full32', o: { bits: 32, layout: 'full' } },
    { name: 'bitmap', o: { bits: 64, layout: 'bitmap' } },
    { name: 'old summary', o: { bits: 32, layout: 'summary-old' } },
    { name: 'rdmp', o: { bits: 64, layout: 'rdmp', rdmpType: 8 } },
  ];
  for (const c of cases) {
    const truth = crashTruth(80, { ...c.o, maxRuns: 6 });
    const bytes = crashDump(truth);
    // cut in the middle of the last run: what is left of it, and all earlier runs, stay readable
    const lastPages = Number((truth.runs.at(-1)!.end - truth.runs.at(-1)!.start) / 4096n);
    const keep = Math.floor(lastPages / 2);
    const cut = bytes.subarray(0, bytes.length - (lastPages - keep) * 4096);
    const img = await openCrashBytes(dir, `${c.name}.dmp`, cut);
    try {
      const clipped = truth.runs.slice(0, -1);
      const data = truth.data.slice(0, -1);
      if (keep > 0) {
        const last = truth.runs.at(-1)!;
        clipped.push({ start: last.start, end: last.start + BigInt(keep) * 4096n });
        data.push(truth.data.at(-1)!.subarray(0, keep * 4096));
      }
      await assertMatches(img, { ...truth, runs: clipped, data }, `${c.name} cut short`);
      assert.equal(img.details['truncatedPages'], lastPages - keep, c.name);
      assert.match(String(img.details['warning']), new RegExp(`^INCOMPLETE: ${lastPages - keep} of the \\d+ pages the dump lists lie past the end of the file`), c.name);
    } finally {
      await img.close();
    }
  }
  // with InsufficientDumpfileSize set, the warning says Windows knew
  const truth = crashTruth(81, { bits: 64, layout: 'full', newFields: true });
  const bytes = crashDump(truth);
  const img = await openCrashBytes(dir, 'insufficient.dmp', bytes.subarray(0, bytes.length - 4096));
  try {
    assert.equal(img.details['truncatedPages'], 1);
    assert.match(String(img.details['warning']), /Windows flagged InsufficientDumpfileSize/);
  } finally {
    await img.close();
  }
});

test('a bitmap dump of a machine with more than 4 TiB of physical address space opens (the bitmap is streamed)', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const truth = crashTruth(90, { bits: 64, layout: 'bitmap', maxRuns: 1, maxRunPages: 1 });
  const high = 2 ** 30 + 3; // PFN of the first page past 4 TiB we keep
  truth.runs = [
    { start: 4096n, end: 2n * 4096n },
    { start: BigInt(high) * 4096n, end: BigInt(high + 2) * 4096n },
  ];
  const pages = [Buffer.alloc(4096, 1), Buffer.alloc(4096, 2), Buffer.alloc(4096, 3)];
  truth.data = [pages[0]!, Buffer.concat([pages[1]!, pages[2]!])];
  const head = crashDump({ ...truth, layout: 'full' }).subarray(0, 0x2000);
  head.writeUInt32LE(5, 0xf98);
  const bits = high + 64;
  const dataStart = Math.ceil((0x2038 + bits / 8) / 4096) * 4096;
  const s = Buffer.alloc(0x38);
  s.write('FDMPDUMP', 0, 'latin1');
  s.writeBigUInt64LE(BigInt(dataStart), 0x20);
  s.writeBigUInt64LE(3n, 0x28);
  s.writeBigUInt64LE(BigInt(bits), 0x30);
  const path = join(dir, 'big.dmp');
  const bitByte = (pfn: number): [number, Buffer] => [0x2038 + Math.floor(pfn / 8), Buffer.from([1 << pfn % 8])];
  const hiByte = Buffer.from([(1 << high % 8) | (1 << (high + 1) % 8)]);
  assert.equal(Math.floor(high / 8), Math.floor((high + 1) / 8));
  sparseFile(path, [[0, head], [0x2000, s], bitByte(1), [0x2038 + Math.floor(high / 8), hiByte], [dataStart, Buffer.concat(pages)]], dataStart + 3 * 4096);
  const img = await openCrashFile(path);
  try {
    await assertMatches(img, truth, '> 4 TiB');
    assert.equal(img.fileOffsetOf!(BigInt(high + 1) * 4096n), BigInt(dataStart + 2 * 4096));
  } finally {
    await img.close();
  }
});
