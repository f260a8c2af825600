/** read() arguments: coded errors before any allocation, and memory per read bounded by bytes, not pages. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { kdumpFixture, writeKdumpFile } from '../../test/fixtures/kdump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { openImage } from './registry.js';

test('bad lengths and addresses are E_CORRUPT (never RangeError), negative addresses print as -0x…', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-args-');
  const { bytes, truth } = await kdumpFixture({ seed: 5, compression: 'mixed', maxMapnr: 300 });
  writeFileSync(join(dir, 'd.kdump'), bytes);
  const img = await openImage(join(dir, 'd.kdump'));
  t.after(() => void img.close());
  const corrupt = (re?: RegExp) => (e: unknown) => e instanceof MemdumpError && e.code === 'E_CORRUPT' && (!re || re.test(e.message));
  for (const len of [-1, 1.5, Number.NaN, 2 ** 31, 2 ** 60]) await assert.rejects(img.read(0n, len), corrupt(/bad read length/), String(len));
  await assert.rejects(img.read(-4096n, 10), corrupt(/address -0x1000 /));
  await assert.rejects(img.read(1n << 70n, 10), corrupt(/address 0x400000000000000000 /));
  // 1 GiB asked past the last run: refused before a buffer of that size exists
  const before = process.resourceUsage().maxRSS;
  await assert.rejects(img.read(truth.runs[0]!.start, 1 << 30), corrupt());
  assert.ok(process.resourceUsage().maxRSS - before < 256 << 10, 'no 1 GiB buffer was touched');
  assert.equal((await img.read(truth.runs[0]!.start, 0)).length, 0);
  const r = truth.runs[0]!;
  assert.ok((await img.read(r.start, 4096)).equals(truth.page(Number(r.start / 4096n))));
});

test('256 KiB pages: a 128 MiB read stays near 128 MiB of memory (batches are bytes, not 1024 pages)', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-big-');
  const path = join(dir, 'big.kdump');
  const bs = 256 << 10;
  const truth = await writeKdumpFile(path, { seed: 9, blockSize: bs, maxMapnr: 520, exclude: 0, compression: 'zlib' });
  const img = await openImage(path);
  t.after(() => void img.close());
  const before = process.memoryUsage().rss;
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const len = 512 * bs;
  const got = await img.read(0n, len);
  const grew = (process.resourceUsage().maxRSS * 1024 - Math.max(before, peakBefore)) / 2 ** 20;
  for (const pfn of [0, 1, 128, 511]) assert.ok(got.subarray(pfn * bs, (pfn + 1) * bs).equals(truth.page(pfn)), `page ${pfn}`);
  t.diagnostic(`peak RSS grew ${grew.toFixed(0)} MiB`);
  assert.ok(grew < 128 + 64, `a 128 MiB read raised peak RSS by ${grew.toFixed(0)} MiB`);
});
