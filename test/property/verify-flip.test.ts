import assert from 'node:assert/strict';
import { closeSync, copyFileSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Range } from '../../src/core/ranges.js';
import { parseReport } from '../../src/pipeline/report.js';
import { verify } from '../../src/pipeline/verify.js';
import type { SparseImage } from '../fixtures/generate.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { writeWith } from '../helpers/job.js';
import { MemorySource } from '../helpers/memory-source.js';
import { Prng } from '../helpers/prng.js';

const LIME_HEADER = 32;

/** ~3 MiB over three runs of odd lengths (so windows straddle record headers): random, zeros + random, text. */
function threeMiB(): SparseImage {
  const p = new Prng(0x5eed);
  const runs: Range[] = [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x100000n + 1_200_000n },
    { start: 0x300000n + 123n, end: 0x300000n + 123n + 1_300_001n },
  ];
  const mixed = Buffer.concat([Buffer.alloc(500_000), p.bytes(700_000)]);
  const text = Buffer.from('Linux version 6.1.0-memdump (verify-flip) #1 SMP '.repeat(30_000)).subarray(0, 1_300_001);
  return { runs, data: [p.bytes(0x9ec00), mixed, text] };
}

interface Rec {
  header: number;
  data: number;
  length: number;
  start: bigint;
}

/** The LiME layout of `runs`: one 32-byte header per run, then its bytes. */
function limeLayout(runs: readonly Range[]): Rec[] {
  let at = 0;
  return runs.map((r) => {
    const length = Number(r.end - r.start);
    const rec = { header: at, data: at + LIME_HEADER, length, start: r.start };
    at += LIME_HEADER + length;
    return rec;
  });
}

/** Physical address of the first stored byte in file offsets [ws, we). */
function firstAddressIn(layout: readonly Rec[], ws: number, we: number): bigint | undefined {
  for (const r of layout) if (r.data < we && r.data + r.length > ws) return r.start + BigInt(Math.max(0, ws - r.data));
  return undefined;
}

function flipBit(path: string, pos: number, bit: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    assert.equal(readSync(fd, b, 0, 1, pos), 1);
    b[0]! ^= 1 << bit;
    writeSync(fd, b, 0, 1, pos);
  } finally {
    closeSync(fd);
  }
}

test('verify catches a single flipped bit anywhere in a LiME file and names the first bad window (and its physical address)', async (t) => {
  const dir = tempDir(t);
  const img = threeMiB();
  const { path, result } = await writeWith(new MemorySource(img), 'lime', dir, 'orig.lime');
  assert.equal(result.report.status, 'COMPLETE');
  const reportPath = result.reportPath!;
  const report = parseReport(readFileSync(reportPath, 'utf8'), reportPath);
  const windowSize = Number(report.hashes!.window.size);
  assert.equal(windowSize, 1 << 16, 'test/helpers/job.ts writes 64 KiB windows');
  const size = statSync(path).size;
  const layout = limeLayout(img.runs);
  const last = layout[layout.length - 1]!;
  assert.equal(size, last.data + last.length);
  assert.ok(size > 3_000_000 && size < 4_000_000);

  const copy = join(dir, 'copy.lime');
  copyFileSync(path, copy);
  const base = await verify(copy, { report: reportPath });
  assert.equal(base.verdict, 'MATCH');
  assert.equal(base.windows.count, Math.ceil(size / windowSize));

  let checked = 0;
  let inData = 0;
  const check = async (pos: number, bit: number) => {
    const label = `flip bit ${bit} at offset ${pos} (0x${pos.toString(16)})`;
    flipBit(copy, pos, bit);
    try {
      const r = await verify(copy, { report: reportPath });
      assert.equal(r.verdict, 'MISMATCH', label);
      assert.equal(r.length.ok, true, label);
      assert.ok(Object.values(r.digests).every((d) => !d.ok), `${label}: every whole-file digest differs`);
      const w = Math.floor(pos / windowSize);
      assert.deepEqual(r.windows.bad, [w], `${label}: exactly one bad window`);
      assert.ok(r.firstBadWindow, label);
      assert.equal(r.firstBadWindow.index, w, label);
      assert.equal(r.firstBadWindow.offset, '0x' + (w * windowSize).toString(16), label);
      assert.equal(r.firstBadWindow.end, '0x' + Math.min((w + 1) * windowSize, size).toString(16), label);
      const rec = layout.find((x) => pos >= x.data && pos < x.data + x.length);
      if (rec) {
        // headers intact: the reader maps the window back to physical memory
        const want = firstAddressIn(layout, w * windowSize, Math.min((w + 1) * windowSize, size));
        assert.ok(want !== undefined);
        assert.equal(r.firstBadWindow.physicalAddress, '0x' + want.toString(16), label);
        inData++;
      }
      checked++;
    } finally {
      flipBit(copy, pos, bit);
    }
  };

  // offset 0, every field of every header, both sides of each header, window edges, the last byte
  const special = new Set<number>([0, 1, size - 1, size - 2, windowSize - 1, windowSize, windowSize + 1]);
  for (const r of layout) {
    for (const f of [0, 3, 4, 7, 8, 15, 16, 23, 24, 31]) special.add(r.header + f);
    special.add(r.header - 1);
    special.add(r.data);
    special.add(r.data + r.length - 1);
  }
  for (const pos of [...special].filter((x) => x >= 0 && x < size).sort((a, b) => a - b)) await check(pos, pos % 8);

  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: 7 }), async (pos, bit) => check(pos, bit)),
    { numRuns: 200 },
  );
  assert.ok(checked >= 200 + special.size - 1, `${checked} positions checked`);
  assert.ok(inData >= 150, `${inData} flips inside data records`);
  // every flip was undone
  assert.equal((await verify(copy, { report: reportPath })).verdict, 'MATCH');
});

test('memdump verify on a copy with one flipped bit exits 11 and names the bad window', async (t) => {
  const dir = tempDir(t);
  const img = threeMiB();
  const { path, result } = await writeWith(new MemorySource(img), 'lime', dir, 'orig.lime');
  const copy = join(dir, 'evidence-copy.lime');
  copyFileSync(path, copy);
  copyFileSync(result.reportPath!, copy + '.report.json');
  const layout = limeLayout(img.runs);
  const pos = layout[1]!.data + 300_000; // inside the second record
  const w = Math.floor(pos / 65536);
  flipBit(copy, pos, 5);

  const r = await runCli(['verify', copy]);
  assert.equal(r.code, 11, r.stderr);
  const out = r.stdout.toString();
  assert.match(out, /^MISMATCH: /);
  assert.match(out, new RegExp(`first bad window #${w}: file offsets 0x${(w * 65536).toString(16)}-0x${((w + 1) * 65536).toString(16)}`));
  const phys = firstAddressIn(layout, w * 65536, (w + 1) * 65536)!;
  assert.match(out, new RegExp(`physical memory from 0x${phys.toString(16)}\\b`));

  const j = await runCli(['verify', copy, '--json']);
  assert.equal(j.code, 11, j.stderr);
  const v = JSON.parse(j.stdout.toString()) as { verdict: string; firstBadWindow: { index: number; physicalAddress: string } };
  assert.equal(v.verdict, 'MISMATCH');
  assert.equal(v.firstBadWindow.index, w);
  assert.equal(v.firstBadWindow.physicalAddress, '0x' + phys.toString(16));
});
