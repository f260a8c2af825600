import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { crc32c, maskCrc, maskedCrc32c, unmaskCrc } from './crc32c.js';

/** Bit-at-a-time reference, straight from the definition. */
function reference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test('RFC 3720 B.4 vectors', () => {
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
});

test('check value "123456789" and the empty string', () => {
  assert.equal(crc32c(Buffer.from('123456789', 'latin1')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

test('matches the bitwise reference for every length 0..300 and odd offsets', () => {
  const b = randomBytes(400);
  for (let n = 0; n <= 300; n++) {
    const off = n % 7;
    assert.equal(crc32c(b.subarray(off, off + n)), reference(b.subarray(off, off + n)), `length ${n}`);
    assert.equal(crc32c(b, 0, off, off + n), reference(b.subarray(off, off + n)), `slice ${n}`);
  }
});

test('incremental equals one-shot', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), (data, cutSeed) => {
      const cut = data.length === 0 ? 0 : cutSeed % (data.length + 1);
      const whole = crc32c(data);
      assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), whole);
      assert.equal(crc32c(data, crc32c(data, 0, 0, cut), cut), whole);
      assert.equal(whole, reference(data));
    }),
    { numRuns: 300 },
  );
});

test('bad slices are rejected', () => {
  assert.throws(() => crc32c(Buffer.alloc(4), 0, 3, 2), RangeError);
  assert.throws(() => crc32c(Buffer.alloc(4), 0, 0, 5), RangeError);
});

test('maskCrc: formula, inverse, and snappy-known values', () => {
  assert.equal(maskCrc(0), 0xa282ead8);
  // masked CRC of "123456789": rotate 0xE3069283 right by 15, add the constant.
  const rot = ((0xe3069283 >>> 15) | (0xe3069283 << 17)) >>> 0;
  assert.equal(maskCrc(0xe3069283), (rot + 0xa282ead8) >>> 0);
  assert.equal(maskedCrc32c(Buffer.from('123456789')), maskCrc(0xe3069283));
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), (x) => unmaskCrc(maskCrc(x)) === x));
});

test('throughput on 64 KiB chunks (reported; floor is deliberately loose)', () => {
  const b = randomBytes(32 << 20);
  let best = 0;
  for (let round = 0; round < 6; round++) {
    const t0 = process.hrtime.bigint();
    let x = 0;
    for (let o = 0; o < b.length; o += 65536) x = (x ^ crc32c(b.subarray(o, o + 65536))) >>> 0;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    assert.ok(x >= 0);
    best = Math.max(best, b.length / (1 << 20) / s);
  }
  console.log(`# crc32c: ${best.toFixed(0)} MiB/s`);
  assert.ok(best > 100, `crc32c at ${best.toFixed(0)} MiB/s`); // guards against a bitwise fallback, not a benchmark
});
