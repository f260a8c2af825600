import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { PAGE } from '../../test/fixtures/hiberfil.js';
import { tempDir } from '../../test/helpers/cli.js';
import { MemdumpError } from '../core/errors.js';
import { MAX_RUNS, PageIndexBuilder } from './hiberfil-index.js';

test('property: the run index equals a naive page model (sorted, last copy of a page wins, runs coalesced)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 0, max: 3 })), { maxLength: 60 }), (adds) => {
      const b = new PageIndexBuilder();
      const model = new Map<number, [number, number]>();
      adds.forEach(([first, n, slot0], block) => {
        b.addRun(first, n, block, slot0);
        for (let k = 0; k < n; k++) model.set(first + k, [block, slot0 + k]);
      });
      const idx = b.finish();
      const pages = [...model.keys()].sort((x, y) => x - y);
      const got: [number, number, number][] = [];
      idx.first.forEach((f, i) => {
        for (let k = 0; k < idx.count[i]!; k++) got.push([f + k, idx.block[i]!, idx.slot[i]! + k]);
      });
      assert.deepEqual(
        got,
        pages.map((pg) => [pg, ...model.get(pg)!]),
      );
      assert.equal(idx.pages, pages.length);
      assert.equal(idx.duplicates, adds.reduce((t, [, n]) => t + n, 0) - pages.length);
      // index runs never split what could be one run: consecutive pages in consecutive slots of one block
      for (let i = 1; i < idx.first.length; i++) {
        const joinable = idx.first[i - 1]! + idx.count[i - 1]! === idx.first[i] && idx.block[i - 1] === idx.block[i] && idx.slot[i - 1]! + idx.count[i - 1]! === idx.slot[i];
        assert.ok(!joinable, `runs ${i - 1} and ${i} should be one`);
      }
      const runs: { start: bigint; end: bigint }[] = [];
      for (const pg of pages) {
        const last = runs[runs.length - 1];
        if (last && last.end === BigInt(pg * PAGE)) last.end += BigInt(PAGE);
        else runs.push({ start: BigInt(pg * PAGE), end: BigInt((pg + 1) * PAGE) });
      }
      assert.deepEqual(idx.runs, runs);
      for (const pg of [0, 1, 150, 299, 320]) {
        const i = idx.find(pg);
        if (!model.has(pg)) assert.equal(i, -1);
        else assert.ok(idx.first[i]! <= pg && pg < idx.first[i]! + idx.count[i]!);
      }
    }),
    { numRuns: 500 },
  );
});

/** Peak RSS (MiB) of a fresh node process that opens `path` and reports the outcome. */
function openInChild(path: string): { maxRssMiB: number; outcome: string } {
  const registry = fileURLToPath(new URL('./registry.js', import.meta.url));
  const script = `
    const { openImage } = await import(${JSON.stringify(registry)});
    const before = process.resourceUsage().maxRSS;
    let outcome;
    try { const img = await openImage(${JSON.stringify(path)}); outcome = 'ok ' + img.details.pages; await img.close(); }
    catch (e) { outcome = (e.code ?? 'uncoded') + ' ' + e.message; }
    console.log(JSON.stringify({ growth: (process.resourceUsage().maxRSS - before) / 1024, outcome }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  return { maxRssMiB: o.growth, outcome: o.outcome };
}

/** A Windows 10 header over a kernel section of `sets` 13-byte compression sets, each claiming 16 pages. */
function writeBomb(path: string, sets: number, dup: boolean, lengthSelf: number, highest: bigint): void {
  const head = Buffer.alloc(7 * PAGE);
  head.write('HIBR', 0, 'latin1');
  head.writeUInt32LE(lengthSelf, 0x0c);
  head.writeUInt32LE(PAGE, 0x18);
  head.writeBigUInt64LE(7n, 0x70);
  head.writeBigUInt64LE(BigInt(sets * 16), 0x230);
  head.writeBigUInt64LE(highest, 0x398);
  const body = Buffer.alloc(sets * 13);
  for (let i = 0; i < sets; i++) {
    body.writeUInt32LE(1 | (1 << 8), i * 13);
    body.writeBigUInt64LE(((dup ? 0n : BigInt(i) * 16n) << 4n) | 15n, i * 13 + 4);
  }
  writeFileSync(path, Buffer.concat([head, body, Buffer.alloc(PAGE)]));
}

test('index bomb: 2M 13-byte sets claiming 33.5M pages open or fail with a coded error without the memory to index pages', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-bomb-');
  const sets = (1 << 21) - 1;
  const cases = [
    ['asc', false, 0x3e0, (1n << 36n) - 1n, /^ok 33554416$/],
    ['dup', true, 0x3e0, (1n << 36n) - 1n, /^ok 16$/],
    ['small-hpp', false, 0x3e0, 0xffffn, /^E_CORRUPT .*more than the machine's 65536 pages/],
    ['guess', true, 0, 0n, /^(ok 16|E_\w+ )/],
  ] as const;
  for (const [name, dup, lengthSelf, highest, want] of cases) {
    const path = join(dir, `${name}.sys`);
    writeBomb(path, sets, dup, lengthSelf, highest);
    const r = openInChild(path);
    t.diagnostic(`bomb ${name}: peak RSS growth ${r.maxRssMiB.toFixed(0)} MiB, ${r.outcome.slice(0, 80)}`);
    assert.match(r.outcome, want, name);
    // a per-page index grew the peak by ~860 MiB here; runs and blocks take ~30 bytes per 13-byte set
    assert.ok(r.maxRssMiB < 320, `${name}: peak RSS grew ${r.maxRssMiB} MiB`);
  }
});


test('scattered single pages beyond MAX_RUNS ranges are refused before any range object is built', () => {
  const b = new PageIndexBuilder();
  // pages two apart: no two adjacent, so every page is its own range
  for (let k = 0; k <= MAX_RUNS; k++) b.addRun(2 * k, 1, k >> 4, k & 15);
  const before = process.memoryUsage().heapUsed;
  assert.throws(() => b.finish(), (e: unknown) => e instanceof MemdumpError && e.code === 'E_TOO_LARGE');
  // the refusal cost no per-range objects (2M ranges would be ~200 MiB of heap)
  assert.ok(process.memoryUsage().heapUsed - before < 64 * 2 ** 20);
});
