import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fromInclusive, intersect, isSortedDisjoint, normalize, subtract, totalLength, type Range } from './ranges.js';

const arbRanges = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 40 })).map(([s, l]) => ({ start: BigInt(s), end: BigInt(s + l) })),
  { maxLength: 12 },
);
const bitmap = (rs: readonly Range[]) => {
  const s = new Set<number>();
  for (const r of rs) for (let i = Number(r.start); i < Number(r.end); i++) s.add(i);
  return s;
};

test('inclusive ends become exclusive without losing the last byte (AVML drops it)', () => {
  const r = fromInclusive(0x100000n, 0x7ffdffffn);
  assert.equal(r.end, 0x7ffe0000n);
  assert.equal(totalLength([r]), 0x7fee0000n);
});

test('normalize, intersect and subtract agree with a bitmap model', () => {
  fc.assert(
    fc.property(arbRanges, arbRanges, (a, b) => {
      const n = normalize(a);
      assert.ok(isSortedDisjoint(n));
      for (let i = 1; i < n.length; i++) assert.ok(n[i]!.start > n[i - 1]!.end, 'touching ranges are merged');
      assert.deepEqual(bitmap(n), bitmap(a));
      const A = bitmap(a);
      const B = bitmap(b);
      assert.deepEqual(bitmap(intersect(a, b)), new Set([...A].filter((x) => B.has(x))));
      assert.deepEqual(bitmap(subtract(a, b)), new Set([...A].filter((x) => !B.has(x))));
      assert.ok(isSortedDisjoint(intersect(a, b)));
      assert.ok(isSortedDisjoint(subtract(a, b)));
    }),
    { numRuns: 500 },
  );
});
