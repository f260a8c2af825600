import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ByteReader, toSafeNumber } from './bytes.js';

test('reads past the end are E_TRUNCATED with the absolute offset, never a RangeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: -4, max: 80 }), fc.constantFrom(1, 2, 4, 8), (bytes, off, width) => {
      const r = new ByteReader(Buffer.from(bytes), 0x1000n);
      const read = () => (width === 1 ? r.u8(off) : width === 2 ? r.u16(off) : width === 4 ? r.u32(off) : r.u64(off));
      if (off >= 0 && off + width <= bytes.length) read();
      else assert.throws(read, (e: { code?: string; details?: { offset?: string } }) => e.code === 'E_TRUNCATED' && typeof e.details?.offset === 'string');
    }),
    { numRuns: 1000 },
  );
});

test('bigint to number only when safe', () => {
  assert.equal(toSafeNumber(5n, 'x'), 5);
  assert.throws(() => toSafeNumber(1n << 60n, 'x'), { code: 'E_TOO_LARGE' });
});
