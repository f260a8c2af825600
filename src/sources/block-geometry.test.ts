import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { devIdOf } from './block-geometry.js';

test('dev_t decoding matches glibc makedev for small and large majors and minors', () => {
  const makedev = (ma: bigint, mi: bigint) => ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
  assert.equal(devIdOf(0x801n), '8:1');
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 0xffffffffn }), fc.bigInt({ min: 0n, max: 0xfffffn }), (ma, mi) => assert.equal(devIdOf(makedev(ma, mi)), `${ma}:${mi}`)),
    { numRuns: 300 },
  );
});
