import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync, inflateSync } from 'node:zlib';
import { adler32 } from './adler32.js';

test('adler32 matches published vectors', () => {
  assert.equal(adler32(Buffer.alloc(0)), 1);
  assert.equal(adler32(Buffer.from('a')), 0x00620062);
  assert.equal(adler32(Buffer.from('abc')), 0x024d0127);
  assert.equal(adler32(Buffer.from('Wikipedia')), 0x11e60398);
  assert.equal(adler32(Buffer.from('message digest')), 0x29750586);
  assert.equal(adler32(Buffer.from('abcdefghijklmnopqrstuvwxyz')), 0x90860b20);
  // RFC 1950 worst case: a long run of 0xff overflows naive 32-bit sums unless reduced every NMAX bytes
  assert.equal(adler32(Buffer.alloc(1 << 20, 0xff)), 0x8e88ef11);
});

test('adler32 agrees with the trailer zlib writes, for many lengths and contents', () => {
  let seed = 7;
  for (const len of [1, 2, 5551, 5552, 5553, 32768, 100_000]) {
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const z = deflateSync(b);
    assert.equal(adler32(b), z.readUInt32BE(z.length - 4), `length ${len}`);
    assert.deepEqual(inflateSync(z), b);
  }
});

test('adler32 continues a running checksum and honours a slice', () => {
  const b = Buffer.from('The quick brown fox jumps over the lazy dog'.repeat(300));
  assert.equal(adler32(b.subarray(1000), adler32(b.subarray(0, 1000))), adler32(b));
  assert.equal(adler32(b, 1, 10, 20), adler32(b.subarray(10, 20)));
  assert.throws(() => adler32(b, 1, 5, b.length + 1), RangeError);
});
