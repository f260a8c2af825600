import assert from 'node:assert/strict';
import { test } from 'node:test';
import { segmentPath } from './e01-segment-set.js';

test('segment names follow libewf: E01…E99, EAA…EZZ, FAA…ZZZ, keeping the case and letter of the first', () => {
  assert.equal(segmentPath('/x/a.E01', 1), '/x/a.E01');
  assert.equal(segmentPath('/x/a.E01', 2), '/x/a.E02');
  assert.equal(segmentPath('/x/a.E01', 99), '/x/a.E99');
  assert.equal(segmentPath('/x/a.E01', 100), '/x/a.EAA');
  assert.equal(segmentPath('/x/a.E01', 101), '/x/a.EAB');
  assert.equal(segmentPath('/x/a.E01', 125), '/x/a.EAZ');
  assert.equal(segmentPath('/x/a.E01', 126), '/x/a.EBA');
  assert.equal(segmentPath('/x/a.E01', 775), '/x/a.EZZ');
  assert.equal(segmentPath('/x/a.E01', 776), '/x/a.FAA');
  assert.equal(segmentPath('/x/a.E01', 100 + 22 * 676 - 1), '/x/a.ZZZ');
  assert.equal(segmentPath('/x/a.E01', 100 + 22 * 676), undefined);
  assert.equal(segmentPath('/x/a.e01', 2), '/x/a.e02');
  assert.equal(segmentPath('/x/a.e01', 100), '/x/a.eaa');
  assert.equal(segmentPath('/x/a.s01', 100), '/x/a.saa');
  assert.equal(segmentPath('/x/a.s01', 100 + 8 * 676 - 1), '/x/a.zzz');
  assert.equal(segmentPath('/x/a.s01', 100 + 8 * 676), undefined);
  assert.equal(segmentPath('/x/memory.img', 2), undefined);
  assert.equal(segmentPath('/x/a.E02', 3), undefined, 'only the first segment names the set');
});
