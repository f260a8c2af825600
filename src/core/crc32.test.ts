import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { Prng } from '../../test/helpers/prng.js';
import { Crc32Account, crc32Combine } from './crc32.js';

// zlib.crc32 over the real bytes is the oracle throughout: the point of this module is to avoid hashing them.

test('crc32Combine agrees with zlib.crc32 over the concatenation (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
      assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(Buffer.concat([a, b])));
    }),
    { numRuns: 300, seed: 18 },
  );
  const z = Buffer.alloc(3 * (1 << 20) + 5);
  assert.equal(crc32Combine(crc32(Buffer.from('abc')), crc32(z), z.length), crc32(Buffer.concat([Buffer.from('abc'), z])));
});

test('crc32Combine: the published check value, split anywhere; an empty B leaves crc(A) as it is', () => {
  const check = Buffer.from('123456789');
  for (let cut = 0; cut <= check.length; cut++) {
    const a = check.subarray(0, cut);
    const b = check.subarray(cut);
    assert.equal(crc32Combine(crc32(a), crc32(b), b.length), 0xcbf43926, `cut at ${cut}`);
  }
  assert.equal(crc32Combine(0x12345678, 0, 0), 0x12345678);
});

test('Crc32Account: data blocks and folded zero blocks give zlib.crc32 and the length of the real stream (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }),
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 700 }), fc.integer({ min: 0, max: 5 })), { maxLength: 12 }),
      (blockBytes, ops) => {
        const acc = new Crc32Account(blockBytes);
        const real: Buffer[] = [];
        for (const op of ops) {
          if (typeof op === 'number') {
            acc.addZeroBlocks(op);
            real.push(Buffer.alloc(op * blockBytes));
          } else {
            acc.add(op);
            real.push(Buffer.from(op));
          }
        }
        const all = Buffer.concat(real);
        assert.equal(acc.crc, crc32(all));
        assert.equal(acc.length, BigInt(all.length));
      },
    ),
    { numRuns: 300, seed: 19 },
  );
});

test('Crc32Account with 1 MiB blocks: 4096 zero blocks (4 GiB) between seeded data, and a length past 2^32', () => {
  const block = 1 << 20;
  const acc = new Crc32Account(block);
  const head = new Prng(20).bytes(12345);
  const tail = new Prng(21).bytes(777);
  acc.add(head);
  acc.addZeroBlocks(4096);
  acc.add(tail);
  let want = crc32(head);
  const z = Buffer.alloc(block);
  for (let i = 0; i < 4096; i++) want = crc32(z, want);
  want = crc32(tail, want);
  assert.equal(acc.crc, want);
  assert.equal(acc.length, 4096n * BigInt(block) + 12345n + 777n);
  assert.ok(acc.length > 0xffff_ffffn, 'the length is a bigint, not wrapped at 32 bits');
});

test('Crc32Account starts as the CRC of nothing; addZeroBlocks(0) changes nothing', () => {
  const acc = new Crc32Account(4096);
  assert.equal(acc.crc, crc32(Buffer.alloc(0)));
  assert.equal(acc.length, 0n);
  acc.add(Buffer.from('abc'));
  const before = acc.crc;
  acc.addZeroBlocks(0);
  assert.equal(acc.crc, before);
  assert.equal(acc.length, 3n);
});
