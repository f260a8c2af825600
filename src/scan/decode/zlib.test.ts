import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { constants, deflateRawSync, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';
import { plausibleDeflate } from './deflate-check.js';
import { findZlib } from './zlib.js';
import type { DecodeBudget } from './types.js';

const MiB = 1024 * 1024;
const budget = (maxOutput = 16 * MiB, remaining = 64 * MiB): DecodeBudget => ({ maxOutput, remaining });
const text = (seed: number, size: number): Buffer => Buffer.from(textBlock(new Rng(seed, 'zl'), size, []).text, 'latin1');

/** Python's zlib module (the C library, not node's copy) at levels 1..9: headers 78 01, 78 5e, 78 9c, 78 da. */
function pyCompress(data: Buffer, level: number): Buffer {
  return execFileSync('python3', ['-c', `import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read(), ${level}))`], { input: data, maxBuffer: 64 * MiB });
}

test('python zlib streams at every FLEVEL, in random bytes: exact start, end and data', () => {
  const rnd = new RandomStream(11);
  const parts: Buffer[] = [];
  const want: [number, number, Buffer][] = [];
  let pos = 0;
  for (const level of [1, 2, 4, 6, 7, 9]) {
    const data = text(level, 1000 + level * 3000);
    const z = pyCompress(data, level);
    const pad = rnd.take(3000 + level);
    parts.push(pad, z);
    pos += pad.length;
    want.push([pos, pos + z.length, data]);
    pos += z.length;
  }
  parts.push(rnd.take(100));
  const buf = Buffer.concat(parts);
  const found = findZlib(buf, 0, buf.length, budget());
  assert.deepEqual(new Set(want.map((w) => buf[w[0] + 1])).size, 4, 'all four FLEVEL headers covered');
  assert.deepEqual(found.map((d) => [d.start, d.end, d.truncated]), want.map((w) => [w[0], w[1], false]));
  found.forEach((d, i) => assert.ok(d.data.equals(want[i]![2])));
});

test('node deflate strategies (fixed, huffman-only, RLE, stored) are all found', () => {
  const data = text(20, 4000);
  const opts = [
    { strategy: constants.Z_FIXED },
    { strategy: constants.Z_HUFFMAN_ONLY },
    { strategy: constants.Z_RLE },
    { level: 0 },
    { level: 9, memLevel: 9 },
  ];
  for (const o of opts) {
    const z = deflateSync(data, o);
    const buf = Buffer.concat([Buffer.from('x\0'), z, Buffer.from('\0tail')]);
    const found = findZlib(buf, 0, buf.length, budget());
    assert.deepEqual(found.map((d) => [d.start, d.end]), [[2, 2 + z.length]], JSON.stringify(o));
    assert.ok(found[0]!.data.equals(data));
  }
});

test('ownership, window end and the minimum output', () => {
  const data = text(21, 30000);
  const z = deflateSync(data);
  const buf = Buffer.concat([z, Buffer.alloc(100), z.subarray(0, 2000)]);
  const second = z.length + 100;
  assert.deepEqual(findZlib(buf, 1, buf.length, budget()).map((d) => [d.start, d.end, d.truncated]), [[second, buf.length, true]]);
  assert.deepEqual(findZlib(buf, 0, second, budget()).map((d) => d.start), [0]);
  const cut = findZlib(buf, second, second + 1, budget())[0]!;
  assert.ok(data.subarray(0, cut.data.length).equals(cut.data) && cut.data.length > 2000);
  // Too short to carry a feature, and the length at which chance streams appear in random data.
  const tiny = deflateSync(Buffer.from('fifteen bytes!!'));
  assert.equal(findZlib(tiny, 0, tiny.length, budget()).length, 0);
  const ok = deflateSync(Buffer.from('sixteen bytes!!!'));
  assert.equal(findZlib(ok, 0, ok.length, budget()).length, 1);
});

test('bad Adler-32 gives nothing (no salvage for zlib)', () => {
  const z = deflateSync(text(22, 5000));
  z[z.length - 1] = (z[z.length - 1] as number) ^ 1;
  assert.equal(findZlib(z, 0, z.length, budget()).length, 0);
});

test('plausibleDeflate accepts every real stream (property, all strategies and levels)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 3000 }),
      fc.integer({ min: 0, max: 9 }),
      fc.constantFrom(constants.Z_DEFAULT_STRATEGY, constants.Z_FIXED, constants.Z_HUFFMAN_ONLY, constants.Z_RLE, constants.Z_FILTERED),
      fc.boolean(),
      (bytes, level, strategy, textual) => {
        const data = textual ? Buffer.from(Buffer.from(bytes).toString('base64').slice(0, bytes.length)) : Buffer.from(bytes);
        const raw = deflateRawSync(data, { level, strategy });
        assert.ok(plausibleDeflate(raw, 0, raw.length));
      },
    ),
    { seed: 7, numRuns: 2000 },
  );
});

test('16 MiB of random bytes: candidates, survivors of the JS check, streams, time', () => {
  for (const seed of [1, 2, 3]) {
    const buf = new RandomStream(seed).take(16 * MiB);
    let cands = 0;
    let plausible = 0;
    for (const f of [0x01, 0x5e, 0x9c, 0xda]) {
      const h = Buffer.from([0x78, f]);
      for (let p = buf.indexOf(h); p >= 0; p = buf.indexOf(h, p + 1)) {
        cands++;
        if (plausibleDeflate(buf, p + 2, buf.length)) plausible++;
      }
    }
    findZlib(buf, 0, buf.length, budget());
    let best = Infinity;
    let found = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      found = findZlib(buf, 0, buf.length, budget()).length;
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    }
    console.log(`# zlib random 16 MiB seed ${seed}: ${cands} headers, ${plausible} pass the JS check, ${found} streams, best ${best.toFixed(1)} ms`);
    assert.ok(plausible <= 8, `${plausible} plausible`);
    assert.equal(found, 0);
  }
});

test('property: mutated streams never throw', () => {
  const base = deflateSync(text(23, 2000));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(base.length), (muts, cut) => {
      const b = Buffer.from(base.subarray(0, Math.max(1, cut)));
      for (const [i, v] of muts) if (i < b.length) b[i] = v;
      for (const d of findZlib(b, 0, b.length, budget(4096, 1 << 20))) assert.ok(d.data.length <= 4096 && d.end <= b.length);
    }),
    { seed: 43, numRuns: 400 },
  );
});
